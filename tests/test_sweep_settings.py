"""A sweep started again in its directory must ask for the same search; a different one is
refused in words that name the options, not the file's internal fields."""
from __future__ import annotations

import pytest

from charrnn.errors import CharrnnError


@pytest.mark.parametrize("key, value, words", [
    ("fixed", {"model": "gru"}, "other --set values"),
    ("space", {"eta": {"kind": "float"}}, "other --param ranges"),
    ("budget_argv", ["--iterations", "99"], "another --iterations or --time-limit"),
])
def test_another_search_in_the_same_directory_is_named_by_its_options(tmp_path, key, value,
                                                                       words):
    from charrnn.plugins.sweep.cli import _settings

    wanted = {"fixed": {"model": "lstm"}, "space": {"eta": {"kind": "float", "log": True}},
              "budget_argv": ["--iterations", "100"], "trials": 4}
    _settings(str(tmp_path), wanted)
    assert _settings(str(tmp_path), {**wanted, "trials": 8})["trials"] == 8
    with pytest.raises(CharrnnError, match=f"was started with {words}; run its own command") \
            as caught:
        _settings(str(tmp_path), {**wanted, key: value})
    assert "differs" not in str(caught.value) and key not in str(caught.value)


def test_the_table_shows_running_trials_with_their_latest_loss():
    """``charrnn sweep --show`` during a sweep: the running trials are listed after the finished
    ones, each with the last validation loss it reported and the update it was measured at."""
    optuna = pytest.importorskip("optuna")
    from charrnn.plugins.sweep.results import format_table, table

    eta = optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    TrialState = optuna.trial.TrialState
    trials = [
        optuna.trial.create_trial(state=TrialState.COMPLETE, value=1.5, params={"eta": 0.01},
                                  distributions={"eta": eta}, user_attrs={"run_dir": "t0"}),
        optuna.trial.create_trial(state=TrialState.RUNNING, params={"eta": 0.002},
                                  distributions={"eta": eta}, intermediate_values={100: 2.25,
                                                                                   200: 2.0},
                                  user_attrs={"run_dir": "t1"}),
        optuna.trial.create_trial(state=TrialState.RUNNING, params={"eta": 0.05},
                                  distributions={"eta": eta}, user_attrs={"run_dir": "t2"}),
    ]
    for number, trial in enumerate(trials):
        trial.number = number
    rows = table(trials, ["eta"])
    assert [r[:3] for r in rows[1:]] == [["0", "complete", "1.5000"],
                                        ["1", "running", "(2.0000 at update 200)"],
                                        ["2", "running", "-"]]
    assert "running" in format_table(rows)


@pytest.mark.e2e
def test_a_finished_trial_is_never_run_again(tmp_path):
    """What Dask does after losing the worker that held a finished trial's result: it runs the
    task again. The trial then returns the outcome it recorded, without training."""
    optuna = pytest.importorskip("optuna")
    from charrnn.plugins.sweep.trial import outcome_path, run_trial
    from helpers import TEXT

    data = tmp_path / "text.txt"
    data.write_text(TEXT * 4, encoding="utf-8")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    log = tmp_path / "trial-0000.log"
    job = {"study": "s", "storage": storage, "pruner": optuna.pruners.NopPruner(),
           "trial_id": trial._trial_id, "run_dir": str(tmp_path / "trial-0000"),
           "log": str(log), "stop": None,
           "argv": ["--data", str(data), "--hidden", "8", "--seq-length", "10", "--iterations",
                    "30", "--val-frac", "0.2", "--val-every", "10", "--log-every", "10"]}
    first = run_trial(job)
    assert first["state"] == "complete" and first["value"] > 0, first
    assert (tmp_path / "trial-0000" / "latest.npz").exists()
    again = run_trial(job)
    assert again == first
    text = log.read_text(encoding="utf-8")
    assert text.count("$ ") == 1 and "(trial already complete; not run again)" in text
    assert outcome_path(str(log)).endswith("trial-0000.outcome.json")
