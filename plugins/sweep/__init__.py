"""``charrnn sweep``: hyperparameter sweeps with Optuna choosing the trials and Dask running them,
each trial an ordinary ``charrnn run``. A command plugin: it registers no callback.

- :mod:`.cli`: the command and the sweep's loop;
- :mod:`.space`: the search space (``--set``, ``--param``, a space file);
- :mod:`.trial`: one trial, as a Dask worker runs it;
- :mod:`.results`: the table, the report and the plot of a sweep.
"""
from __future__ import annotations

from charrnn import hookimpl


@hookimpl
def register_commands(cli):
    from .cli import register  # Click and the sweep's own modules only when commands are read

    register(cli)
