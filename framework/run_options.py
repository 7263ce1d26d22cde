"""The core's options of a run: what ``charrnn run`` offers before any plugin adds its own.

Plugins declare theirs the same way, through the ``add_run_options`` hook; the command line, the
Python API and the sweep read them all from one :class:`~charrnn.config.Schema`.
"""
from __future__ import annotations

from typing import Tuple

from .config import Option

#: Updates a run does when neither ``iterations`` nor ``time_limit`` is given.
DEFAULT_ITERATIONS = 100_000

CORE_OPTIONS: Tuple[Option, ...] = (
    Option("preset", str, None, metavar="NAME|FILE", show_default=False,
           help="Start from a recipe: a registered preset (charrnn plugins lists them; quick "
                "gives the best text in two minutes on a CPU) or a file of options. Options "
                "typed after it win."),
    Option("backend", str, "numpy", registry="backend", help="Array backend to compute with."),
    Option("model", str, "rnn", registry="model", fixed_on_resume=True,
           help="Model to train: rnn is the course's vanilla RNN; lstm and gru are char-rnn's "
                "gated cells."),
    Option("optimizer", str, "adagrad", registry="optimizer", fixed_on_resume=True,
           help="Optimizer for the updates."),
    Option("data", str, None, fixed_on_resume=True,
           help="Text file to train on [default: the Python language reference shipped with "
                "CPython]."),
    Option("encoding", str, "utf-8", fixed_on_resume=True, help="Encoding of --data."),
    Option("hidden", int, 100, min=1, fixed_on_resume=True,
           help="Hidden state size m (per layer)."),
    Option("layers", int, 1, min=1, fixed_on_resume=True,
           help="Recurrent layers stacked on each other."),
    Option("embedding", int, 0, min=0, fixed_on_resume=True,
           help="Read characters through a learned embedding of this many dimensions (as "
                "torch-rnn's wordvec_size) instead of one-hot; lstm and gru. 0: one-hot, as "
                "char-rnn and the course model read them."),
    Option("dropout", float, 0.0, min=0, max=1, max_open=True,
           help="Probability of dropping each unit of a layer's output on its way up, during "
                "training only (as in char-rnn)."),
    Option("batch_size", int, 1, min=1, fixed_on_resume=True,
           help="Streams read in parallel: the text is cut into this many contiguous stripes, "
                "each with its own hidden state."),
    Option("seq_length", int, 25, min=1, fixed_on_resume=True,
           help="Characters per update and stream (back-propagation length)."),
    Option("eta", float, None, min=0, min_open=True, show_default=False,
           help="Learning rate [default: the optimizer's own: 0.1 for adagrad and sgd, 0.002 for "
                "adam and rmsprop]."),
    Option("clip", float, 5.0, min=0,
           help="Clip every gradient entry to [-clip, clip] before the update (0: no clip)."),
    Option("clip_norm", float, None, min=0, min_open=True, metavar="NORM", show_default=False,
           help="Scale the gradient down when its L2 norm exceeds NORM, measured per predicted "
                "character (PyTorch's clip_grad_norm_ on a mean loss); applied before --clip, so "
                "pair it with --clip 0 for the norm limit alone."),
    Option("sigma", float, None, min=0, min_open=True, fixed_on_resume=True, show_default=False,
           help="Standard deviation of the initial weights [default: the model's own: 0.01 for "
                "rnn, 0.05 for lstm and gru]."),
    Option("iterations", int, None, min=1, show_default=False,
           help=f"Number of updates [default: {DEFAULT_ITERATIONS}, or no limit with "
                "--time-limit]."),
    Option("time_limit", float, None, min=0, min_open=True, metavar="SECONDS",
           show_default=False,
           help="Stop after this many seconds of training (over the run's whole life, resumes "
                "included), saving a checkpoint and the report."),
    Option("seed", int, 0, min=0, fixed_on_resume=True,
           help="Seed for the initial weights and the dropout masks."),
    Option("dtype", str, "float64", choices=("float64", "float32"),
           help="Floating-point precision."),
    Option("out", str, None, saved=False, show_default=False,
           help="Run directory [default: runs/<date>-<time>]."),
    Option("log_every", int, 1000, min=1, help="Updates between progress lines."),
    Option("resume", str, None, saved=False, metavar="RUN_DIR", show_default=False,
           help="Continue the run in RUN_DIR exactly where its latest checkpoint left off."),
    Option("val_frac", float, 0.0, min=0, max=1, max_open=True, fixed_on_resume=True,
           help="Fraction of the text, from its end, held out for validation."),
    Option("quiet", bool, False, saved=False, show_default=False, help="No progress display."),
)
