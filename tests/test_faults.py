"""Fault injection: training killed (SIGKILL) or interrupted (SIGINT) at random and at chosen
moments, then recovered, must end exactly where an uninterrupted run ends.

Random moments are drawn from a seeded generator over the reference run's duration. Chosen
moments are reached by a small launcher that wraps one of charrnn's own write functions so
that the process kills or interrupts itself there: half way through a checkpoint's temporary
file, between that file and its rename, right after a metrics row, inside a sample's append,
inside the first loss plot (matplotlib's import included), during start-up, and after the last
checkpoint, before the report.

After each fault the run is recovered as a user would: ``charrnn run --resume DIR`` when it has
a checkpoint, else the same command again in the same ``--out``. The recovered run must match
the uninterrupted one bit for bit: every parameter of ``latest.npz``; metrics.csv's update, loss,
smooth-loss and validation columns; the samples. No temporary file may be left, and the report
must be there. Trials run two at a time (this is what a 2-core CI machine can do).
"""
from __future__ import annotations

import concurrent.futures
import csv
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import List, Optional, Tuple

import numpy
import pytest
from charrnn.checkpoint import load_checkpoint
from helpers import TEXT, charrnn_cmd, console_script, read_samples

#: End-to-end tier (real processes killed and interrupted at random moments): `python -m pytest -m e2e`.
pytestmark = pytest.mark.e2e

ITERATIONS = 240
OPTIONS = ("--hidden", 16, "--seq-length", 10, "--iterations", ITERATIONS,
           "--checkpoint-every", 40, "--log-every", 10, "--sample-every", 80,
           "--sample-length", 20, "--plot-every", 120, "--val-frac", 0.1, "--val-every", 60,
           "--no-gradcheck", "--quiet")
KILL_TRIALS = 14
INTERRUPT_TRIALS = 2

#: Where a chosen fault strikes: (name, module attribute to wrap, which call, what to do).
#: The wrapper runs the fault on the given call (1-based) of the wrapped function.
CHOSEN: List[Tuple[str, str, str, int, str]] = [
    ("kill-mid-checkpoint-file", "charrnn.files", "atomic_write", 4, "kill-mid-write"),
    ("kill-before-checkpoint-rename", "charrnn.files", "os_replace", 3, "kill"),
    ("kill-after-a-metrics-row", "charrnn.files", "append_text", 9, "kill-after"),
    ("kill-inside-a-sample", "charrnn.files", "append_text", 13, "kill-mid-write"),
    ("kill-in-the-first-plot", "charrnn.plugins.lossplot", "plot_loss", 1, "kill"),
    ("kill-after-the-last-checkpoint", "charrnn.plugins.report", "Report.on_train_end", 1, "kill"),
    ("interrupt-in-the-first-plot", "charrnn.plugins.lossplot", "plot_loss", 1, "interrupt"),
    ("interrupt-during-start-up", "charrnn.assembly", "load_corpus", 1, "interrupt"),
    ("interrupt-in-a-checkpoint", "charrnn.files", "atomic_write", 3, "interrupt"),
]

#: The launcher that plants a chosen fault, then runs ``charrnn`` as the console script does.
LAUNCHER = textwrap.dedent('''
    import importlib, os, signal, sys
    module_name, attr, at, action = sys.argv[1:5]
    argv = sys.argv[5:]
    calls = [0]

    def strike(stage):
        if action == stage == "interrupt":
            os.kill(os.getpid(), signal.SIGINT)
        elif action == "terminate" and stage == "interrupt":
            os.kill(os.getpid(), signal.SIGTERM)
        elif action == stage:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(original):
        def wrapped(*args, **kwargs):
            calls[0] += 1
            if calls[0] != int(at):
                return original(*args, **kwargs)
            if action == "kill-mid-write":
                # Write part of the file, then die: a temporary file or a row cut short.
                if attr == "atomic_write":
                    def half(fh, write=args[1]):
                        write(fh)
                        fh.flush()
                        os.kill(os.getpid(), signal.SIGKILL)
                    return original(args[0], half)
                with open(args[0], "a", encoding="utf-8") as fh:
                    fh.write(args[1][: len(args[1]) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            strike("kill")
            strike("interrupt")
            result = original(*args, **kwargs)
            strike("kill-after")
            return result
        return wrapped

    if attr == "os_replace":  # between a finished temporary file and its rename
        import charrnn.files as files
        real = files.os.replace

        class Os:
            def __getattr__(self, name):
                return getattr(os, name)
        patched = Os()
        def replace(src, dst, _real=real):
            calls[0] += 1
            if calls[0] == int(at):
                os.kill(os.getpid(), signal.SIGKILL)
            return _real(src, dst)
        patched.replace = replace
        files.os = patched
    else:
        module = importlib.import_module(module_name)
        owner, _, name = attr.rpartition(".")
        target = getattr(module, owner) if owner else module
        setattr(target, name, wrap(getattr(target, name)))
    from charrnn.launch import main
    main(argv)
''')


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """The data, and the uninterrupted reference run with its duration."""
    root = tmp_path_factory.mktemp("faults")
    data = root / "text.txt"
    data.write_text(TEXT * 6, encoding="utf-8")
    (root / "launcher.py").write_text(LAUNCHER, encoding="utf-8")
    reference = root / "reference"
    start = time.perf_counter()
    proc = charrnn_cmd("run", "--data", data, *OPTIONS, "--out", reference, cwd=root)
    duration = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    return root, data, reference, duration


def _args(data: Path, out: Path, options=OPTIONS) -> List[str]:
    return ["run", "--data", str(data), *[str(a) for a in options], "--out", str(out)]


def _env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def _default_sigint() -> None:
    """Ctrl-C acts in the child even where this process ignores it: a shell starts background
    jobs with SIGINT ignored, and children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def fault_at_time(data: Path, out: Path, delay: float, sig: int,
                  options=OPTIONS) -> subprocess.CompletedProcess:
    """Start a run and send ``sig`` after ``delay`` seconds (if it is still running): a moment
    drawn at random, not an event awaited; every outcome is accepted but a wrong resume."""
    proc = subprocess.Popen([console_script(), *_args(data, out, options)], cwd=str(out.parent),
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def fault_at_call(root: Path, data: Path, out: Path, module: str, attr: str, at: int,
                  action: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / "launcher.py"), module, attr, str(at),
                           action, *_args(data, out)], cwd=str(out.parent), env=_env(),
                          capture_output=True, text=True, timeout=120,
                          preexec_fn=_default_sigint)


def check_fault_outcome(proc: subprocess.CompletedProcess, sig: int = signal.SIGINT) -> None:
    """A kill leaves whatever it leaves; an interrupt ends cleanly with status 128 + signal
    (130 for Ctrl-C, 143 for SIGTERM), or 130 with "Interrupted." outside training, where
    SIGTERM keeps its default action and ends the process as a kill does."""
    if proc.returncode in (-signal.SIGKILL, -signal.SIGTERM):
        return
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode != 0:  # it may have finished before the signal came
        assert proc.returncode in (130, 128 + sig), proc.stderr
        assert proc.stderr.splitlines()[0] in ("Interrupted.",) or \
            "continue with: charrnn run --resume" in proc.stderr, proc.stderr


def recover(data: Path, out: Path, options=OPTIONS) -> List[str]:
    """Bring the run to its end as a user would; return the commands used."""
    used = []
    for _ in range(4):
        if (out / "latest.npz").exists():
            args = ["run", "--resume", str(out), "--quiet"]
        else:
            args = _args(data, out, options)
        proc = charrnn_cmd(*args, cwd=out.parent)
        used.append(" ".join(args[:3]))
        assert "Traceback" not in proc.stderr, proc.stderr
        if proc.returncode == 2 and "already done" in proc.stderr:
            break  # finished, report written: nothing left to do
        assert proc.returncode == 0, (used, proc.stderr)
        if load_checkpoint(str(out / "latest.npz")).meta["update"] == ITERATIONS:
            break
    return used


def _rows(path: Path):
    with open(path, newline="", encoding="utf-8") as fh:
        return [(r["update"], r["loss"], r["smooth_loss"], r["val_loss"])
                for r in csv.DictReader(fh)]


def assert_matches_reference(out: Path, reference: Path, label: str, plotted: bool = True) -> None:
    a, b = load_checkpoint(str(reference / "latest.npz")), load_checkpoint(str(out / "latest.npz"))
    assert b.meta["update"] == ITERATIONS, label
    assert sorted(a.params) == sorted(b.params)
    for name in a.params:
        assert numpy.array_equal(a.params[name], b.params[name]), (label, name)
    assert _rows(out / "metrics.csv") == _rows(reference / "metrics.csv"), label
    assert read_samples(out / "samples.md") == read_samples(reference / "samples.md"), label
    assert (out / "report.md").exists() and (out / "loss.png").exists() == plotted, label
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers, (label, leftovers)


def _trial(setting, label: str, how, expected: Optional[int] = None) -> Optional[str]:
    root, data, reference, _ = setting
    out = root / label
    proc = how(data, out)
    if expected is not None:  # a planted fault must strike where it says
        assert proc.returncode == expected, (label, proc.returncode, proc.stderr)
    check_fault_outcome(proc)
    recover(data, out)
    assert_matches_reference(out, reference, label)
    return label


def _run_trials(setting, trials) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_trial, setting, *trial) for trial in trials]
        for future in futures:
            future.result()  # re-raises the first failed trial's assertion


def fault_trials(setting, seed: int, count: int, earliest: float, sig: int,
                 planted: str) -> list:
    """``count`` runs that get ``sig`` at seeded random moments (from ``earliest`` of the
    reference run's duration on), and the planted faults of kind ``planted`` ("kill" or
    "interrupt"), each with the exit status it must produce."""
    root, _, _, duration = setting
    rng = random.Random(seed)
    trials = []
    for i in range(count):
        delay = rng.uniform(earliest, 1.0) * duration
        trials.append((f"{planted}-{i}-at-{delay:.2f}s",
                       lambda d, o, delay=delay: fault_at_time(d, o, delay, sig)))
    expected = 130 if planted == "interrupt" else -signal.SIGKILL
    for name, module, attr, at, action in CHOSEN:
        if (action == "interrupt") == (planted == "interrupt"):
            trials.append((name, lambda d, o, m=module, a=attr, n=at, act=action:
                           fault_at_call(root, d, o, m, a, n, act), expected))
    return trials


def test_sigkill_at_random_and_chosen_moments_resumes_bit_for_bit(setting):
    trials = fault_trials(setting, 20261125, KILL_TRIALS, 0.05, signal.SIGKILL, "kill")
    assert len(trials) >= 20
    _run_trials(setting, trials)


def test_sigint_at_random_and_chosen_moments_ends_cleanly_and_resumes(setting):
    _run_trials(setting, fault_trials(setting, 130, INTERRUPT_TRIALS, 0.3, signal.SIGINT,
                                      "interrupt"))


#: A run whose last update is neither a checkpoint's nor a sample's: its end-of-run sample and
#: final checkpoint are written only by the end of the run.
ODD_END = ("--hidden", 16, "--seq-length", 10, "--iterations", 230, "--checkpoint-every", 50,
           "--log-every", 10, "--sample-every", 100, "--sample-length", 20, "--no-gradcheck",
           "--quiet")


@pytest.mark.parametrize("target", ["charrnn.plugins.sampler:Sampler.on_train_end",
                                    "charrnn.plugins.lossplot:plot_loss",
                                    "charrnn.plugins.checkpointing:Checkpoints.on_train_end",
                                    "charrnn.plugins.report:Report.on_train_end"])
def test_a_kill_among_the_end_of_run_files_is_finished_by_a_resume(tmp_path, target):
    """Killed while the run writes its end-of-run sample, plot, checkpoint or report: the resume
    that finishes it leaves the same samples, metrics and report sections as an uninterrupted
    run, the last update's sample included."""
    data = tmp_path / "text.txt"
    data.write_text(TEXT * 6, encoding="utf-8")
    (tmp_path / "launcher.py").write_text(LAUNCHER, encoding="utf-8")
    reference, out = tmp_path / "reference", tmp_path / "killed"
    proc = charrnn_cmd(*_args(data, reference, ODD_END), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    module, attr = target.split(":")
    proc = subprocess.run([sys.executable, str(tmp_path / "launcher.py"), module, attr, "1",
                           "kill", *_args(data, out, ODD_END)], cwd=str(tmp_path), env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    proc = charrnn_cmd("run", "--resume", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert read_samples(out / "samples.md") == read_samples(reference / "samples.md")
    assert 230 in read_samples(out / "samples.md")
    assert _rows(out / "metrics.csv") == _rows(reference / "metrics.csv")
    for section in ("## Samples", "## Gradient check"):
        ours = (out / "report.md").read_text(encoding="utf-8").partition(section)[2]
        theirs = (reference / "report.md").read_text(encoding="utf-8").partition(section)[2]
        assert ours.split("\n## ")[0] == theirs.split("\n## ")[0], section


@pytest.mark.parametrize("call", [2, 4])
def test_a_kill_between_latest_and_best_is_repaired_by_the_next_start(tmp_path, call):
    """Killed right after a checkpoint's latest.npz and before its best.npz (the second write
    of a save that improved the best): best.npz lags one checkpoint behind or is missing, and
    the next start (here the resume that finishes the run) writes it again, so that every
    file agrees with an uninterrupted run's."""
    data = tmp_path / "text.txt"
    data.write_text(TEXT * 6, encoding="utf-8")
    (tmp_path / "launcher.py").write_text(LAUNCHER, encoding="utf-8")
    reference, out = tmp_path / "reference", tmp_path / "killed"
    proc = charrnn_cmd(*_args(data, reference), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, str(tmp_path / "launcher.py"),
                           "charrnn.plugins.checkpointing", "save_checkpoint", str(call), "kill",
                           *_args(data, out)], cwd=str(tmp_path), env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    latest = load_checkpoint(str(out / "latest.npz"))
    recorded = latest.meta["callbacks"]["checkpoints"]["best_update"]
    assert recorded == latest.meta["update"]  # latest names itself the best...
    best = out / "best.npz"
    assert not best.exists() or load_checkpoint(str(best)).meta["update"] < recorded  # ...best lags
    proc = charrnn_cmd("report", out, cwd=tmp_path)  # a start that trains nothing repairs it
    assert proc.returncode == 0, proc.stderr
    assert "best.npz repaired" in proc.stdout
    repaired = load_checkpoint(str(best))
    assert repaired.meta["update"] == recorded
    for name in latest.params:
        assert numpy.array_equal(repaired.params[name], latest.params[name]), name
    recover(data, out)
    assert_matches_reference(out, reference, f"killed at save_checkpoint call {call}")
    a = load_checkpoint(str(reference / "best.npz"))
    b = load_checkpoint(str(out / "best.npz"))
    assert a.meta["update"] == b.meta["update"]
    for name in a.params:
        assert numpy.array_equal(a.params[name], b.params[name]), name
