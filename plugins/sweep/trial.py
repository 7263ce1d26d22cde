"""One trial of a sweep, as a Dask worker runs it: an ordinary ``charrnn run`` in a child process.

A child process, not a call in the worker, so that a trial is exactly the run a user would make
(its run directory can be resumed, sampled and reported like any other), and so that a plugin
that crashes or leaks takes down one run, not the worker. The child dies with the worker
(``PR_SET_PDEATHSIG`` on Linux), so a killed worker leaves no orphan training on.

The validation losses in the run's metrics log (:func:`charrnn.metrics.read_metrics`) are reported to the trial as they
appear, and the study's pruner is asked after each one; a trial it prunes is stopped with
Ctrl-C, which saves its checkpoint like any interrupted run.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

#: Seconds between reads of the trial's metrics.csv.
POLL = 0.5
#: Seconds between looks at the sweep's stop flag (a round trip to the scheduler).
STOP_CHECK = 1.0
#: One BLAS thread per trial: the cluster runs one trial per core.
SINGLE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                        "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                                        "NUMEXPR_NUM_THREADS")}


def _die_with_parent() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # workers may start with Ctrl-C ignored
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _stop_event(name: Optional[str]):
    """The sweep's stop flag, on the scheduler (None outside a Dask worker)."""
    if not name:
        return None
    try:
        import distributed

        return distributed.Event(name)
    except Exception:  # not on a worker: nobody can ask this trial to stop
        return None


def validation_losses(run_dir: str) -> List[Tuple[int, float]]:
    """``(update, validation loss)`` for each row of the run's metrics log that has one."""
    from charrnn.metrics import read_metrics

    try:
        rows = read_metrics(run_dir)
    except (OSError, ValueError):  # a file being written, or damaged
        return []
    return [(int(r["update"]), float(r["val_loss"])) for r in rows if r["val_loss"] is not None]


def _last_line(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def trial_command(run_dir: str, argv: List[str]) -> List[str]:
    """The ``charrnn`` arguments: a new run; the run in ``run_dir`` resumed when a checkpoint is
    there (the trial was interrupted, or its worker died); or, when that run had already done
    all its updates, its report written again (``charrnn report``, which refuses nothing)."""
    if not os.path.exists(os.path.join(run_dir, "latest.npz")):
        return ["run", *argv, "--out", run_dir, "--quiet"]
    if "--iterations" in argv:
        wanted = int(argv[argv.index("--iterations") + 1])
        done = [u for u, _ in validation_losses(run_dir)]
        if done and done[-1] >= wanted:
            return ["report", run_dir, "--quiet"]
    return ["run", "--resume", run_dir, "--quiet"]


def outcome_path(log: str) -> str:
    """Where a trial's final outcome is kept: beside its log, outside its run directory."""
    return os.path.splitext(log)[0] + ".outcome.json"


def recorded_outcome(log: str) -> Optional[Dict[str, Any]]:
    """The outcome a finished trial recorded, or None (it has not finished, or the record is
    unreadable, in which case the trial runs)."""
    try:
        with open(outcome_path(log), encoding="utf-8") as f:
            outcome = json.load(f)
    except (OSError, ValueError):
        return None
    return outcome if isinstance(outcome, dict) and outcome.get("state") in FINAL else None


#: Outcomes that end a trial for good: recorded, so that the trial never runs again.
FINAL = ("complete", "pruned", "fail")


def run_trial(job: Dict[str, Any]) -> Dict[str, Any]:
    """Run one trial once; see :func:`_run_trial`.

    Dask may run a task again after it has finished: when the worker that holds its result
    dies before the sweep has read it. A trial is made idempotent for that: its final outcome
    is recorded beside its log, and a trial that finds one returns it without training (a
    pruned trial would otherwise train on after the fact).
    """
    recorded = recorded_outcome(job["log"])
    if recorded is not None:
        with open(job["log"], "a", encoding="utf-8") as sink:
            sink.write(f"(trial already {recorded['state']}; not run again)\n")
        return recorded
    outcome = _run_trial(job)
    if outcome["state"] in FINAL:
        from charrnn.files import atomic_write_text

        atomic_write_text(outcome_path(job["log"]), json.dumps(outcome))
    return outcome


def _run_trial(job: Dict[str, Any]) -> Dict[str, Any]:
    """Run one trial; returns ``{"state": "complete"|"pruned"|"fail", "value", "detail"}``.

    ``job`` holds the study's name and storage (a ``DaskStorage``), the pruner, the trial's id,
    its ``charrnn run`` arguments, its run directory and the file its output goes to.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=job["study"], storage=job["storage"],
                              pruner=job["pruner"])
    trial = optuna.trial.Trial(study, job["trial_id"])
    run_dir, log = job["run_dir"], job["log"]
    cmd = [sys.executable, "-m", "charrnn", *trial_command(run_dir, job["argv"])]
    env = {**os.environ, **SINGLE_THREAD}
    reported = {step for step in trial.storage.get_trial(job["trial_id"]).intermediate_values}
    with open(log, "a", encoding="utf-8") as sink:
        sink.write("$ " + " ".join(cmd) + "\n")
        sink.flush()
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=_die_with_parent)
        pruned_at: Optional[int] = None
        stop = _stop_event(job.get("stop"))
        stopped, checked = False, time.monotonic()
        try:
            while True:
                done = proc.poll() is not None
                if stop is not None and not done and not stopped and \
                        time.monotonic() - checked > STOP_CHECK:
                    checked = time.monotonic()
                    if stop.is_set():  # the sweep was interrupted: save and stop
                        stopped = True
                        proc.send_signal(signal.SIGINT)
                for update, value in validation_losses(run_dir):
                    if update in reported or pruned_at is not None:
                        continue
                    reported.add(update)
                    trial.report(value, update)
                    if pruned_at is None and not done and trial.should_prune():
                        pruned_at = update
                        proc.send_signal(signal.SIGINT)  # stops cleanly, with a checkpoint
                if done:
                    break
                time.sleep(POLL)
        finally:
            if proc.poll() is None:  # the task itself was cancelled
                proc.kill()
                proc.wait()
    losses = validation_losses(run_dir)
    value = losses[-1][1] if losses else None
    if stopped:
        return {"state": "interrupted", "value": value, "detail": "the sweep was interrupted"}
    if pruned_at is not None:
        return {"state": "pruned", "value": value, "detail": f"pruned at update {pruned_at}"}
    last = _last_line(log)
    if proc.returncode == 0 and value is not None:
        return {"state": "complete", "value": value, "detail": ""}
    if "has used its --time-limit" in last and value is not None:  # finished before, resumed
        return {"state": "complete", "value": value, "detail": ""}
    if "training diverged" in last:
        return {"state": "pruned", "value": value, "detail": "diverged"}
    return {"state": "fail", "value": value,
            "detail": last or f"charrnn run exited with status {proc.returncode}"}
