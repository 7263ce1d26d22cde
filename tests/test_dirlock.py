"""One writer per run directory: a second ``charrnn run``, ``--resume`` or ``charrnn report`` on
a directory another process writes is refused in one line that names that process, and changes
nothing there; a lock left by a process that died never blocks.

flock locks belong to open files, so a lock held here, in the test's process, stands in for
another process's in the first tier; the end-to-end tests start real processes.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from charrnn.checkpoint import load_checkpoint
from charrnn.dirlock import LOCK_NAME, DirectoryLock
from helpers import LEAN, TEXT, assert_one_line_error, charrnn_cmd, console_script, run_in_process
from test_bad_inputs import snapshot

TINY = ("--hidden", 8, "--seq-length", 10, *LEAN)


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_a_second_writer_is_refused_and_changes_nothing(text, tmp_path):
    run = tmp_path / "run"
    proc = run_in_process("run", "--data", text, *TINY, "--iterations", 20, "--out", run,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with DirectoryLock(str(run)) as held:
        held.claim()
        before = snapshot(run)
        proc = run_in_process("run", "--data", text, *TINY, "--iterations", 20, "--out", run,
                              cwd=tmp_path)
        assert_one_line_error(proc, "already holds a run")
        for argv in (["run", "--resume", run, "--iterations", 40], ["report", run]):
            proc = run_in_process(*argv, cwd=tmp_path)
            line = assert_one_line_error(proc, f"run directory {run} is in use by another "
                                               f"charrnn process (process {os.getpid()}, since")
            assert "wait for it to end or stop it" in line
            assert snapshot(run) == before, argv
    proc = run_in_process("run", "--resume", run, "--iterations", 40, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_a_start_before_the_first_checkpoint_does_not_take_over_a_live_run(text, tmp_path):
    """A run that has written config.json but no checkpoint yet looks like a failed start to
    a new run in the same --out; while it is alive, it is refused instead of cleared."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}", encoding="utf-8")
    with DirectoryLock(str(run)) as held:
        held.claim()
        proc = run_in_process("run", "--data", text, *TINY, "--iterations", 20, "--out", run,
                              cwd=tmp_path)
        assert_one_line_error(proc, "is in use by another charrnn process")
        assert (run / "config.json").read_text(encoding="utf-8") == "{}"
    proc = run_in_process("run", "--data", text, *TINY, "--iterations", 20, "--out", run,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "starting over in" in proc.stdout


def test_a_lock_file_left_behind_never_blocks(text, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text("999999\n2026-01-01 00:00:00\ncharrnn run\n", encoding="utf-8")
    proc = run_in_process("run", "--data", text, *TINY, "--iterations", 20, "--out", run,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "starting over" not in proc.stdout  # a lock file alone is not a failed start
    assert (run / LOCK_NAME).read_text(encoding="utf-8").split("\n")[0] == str(os.getpid())


def test_a_refused_command_leaves_no_lock_file_where_it_found_none(tmp_path):
    """A resume of a folder that holds no run is refused, and leaves that folder as it was."""
    folder = tmp_path / "notarun"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n", encoding="utf-8")
    proc = run_in_process("run", "--resume", folder, cwd=tmp_path)
    assert proc.returncode != 0
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


# -- real processes --------------------------------------------------------------------------

def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background test run has it ignored


def _start(argv, cwd):
    return subprocess.Popen([console_script(), *map(str, argv)], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_default_sigint)


@pytest.mark.e2e
def test_two_processes_on_one_run_directory(text, tmp_path):
    """The first writer trains; a second start of the same command and a resume, both made
    while it trains, are refused with its process id; once it has ended, the resume works."""
    run = tmp_path / "live"
    argv = ["run", "--data", text, *TINY, "--iterations", 200_000, "--checkpoint-every", 100,
            "--out", run]
    first = _start(argv, tmp_path)
    try:
        deadline = time.monotonic() + 120  # only to fail a hung start
        while not (run / "latest.npz").exists() and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()
            time.sleep(0.05)
        assert_one_line_error(charrnn_cmd(*argv, cwd=tmp_path), "already holds a run")
        for other in (["run", "--resume", run, "--iterations", 300_000], ["report", run]):
            proc = charrnn_cmd(*other, cwd=tmp_path)
            assert_one_line_error(proc, f"is in use by another charrnn process (process "
                                        f"{first.pid}, since")
    finally:
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    rows = (run / "metrics.csv").read_text(encoding="utf-8").splitlines()[1:]
    updates = [int(r.split(",")[0]) for r in rows]
    assert updates == sorted(set(updates)), "two writers interleaved their rows"
    saved = load_checkpoint(str(run / "latest.npz")).meta["update"]
    proc = charrnn_cmd("run", "--resume", run, "--iterations", saved + 200, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
