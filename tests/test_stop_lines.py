"""What a run says about itself is true: its stop line, its speeds and its report, after resumes
and when ``charrnn report`` writes the report again."""
from __future__ import annotations

import re
import time

import pytest
from helpers import LEAN, TEXT, charrnn_inproc, make_trainer

QUIET_RUN = ("--hidden", 8, "--seq-length", 10, "--no-gradcheck", "--no-plot")


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def _row(report: str, name: str) -> str:
    match = re.search(rf"^\| {name} \| (.*) \|$", report, re.M)
    assert match, report
    return match.group(1)


def test_charrnn_report_writes_what_the_run_wrote(data_file, tmp_path):
    """Resumed at 30 and finished at 60: the run's report says so, and ``charrnn report``
    later writes the same resume point and speed, and prints no speed of its own."""
    run = tmp_path / "run"
    proc = charrnn_inproc("run", "--data", data_file, *QUIET_RUN, "--iterations", 30,
                          "--out", run, "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = charrnn_inproc("run", "--resume", run, "--iterations", 60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    written = (run / "report.md").read_text(encoding="utf-8")
    assert _row(written, "updates done") == "60 of 60 requested (resumed at update 30)"
    speed = _row(written, "speed")
    assert "30 updates" in speed and "the last process that trained" in speed

    proc = charrnn_inproc("report", run, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    again = (run / "report.md").read_text(encoding="utf-8")
    assert _row(again, "updates done") == _row(written, "updates done")
    assert _row(again, "speed") == speed
    assert "updates/s" not in proc.stdout  # this process trained nothing


def test_a_resumed_runs_stop_lines_count_the_same_way(data_file, tmp_path):
    run = tmp_path / "run"
    proc = charrnn_inproc("run", "--data", data_file, *QUIET_RUN, "--iterations", 30,
                          "--out", run, "--no-report", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^done: 30 updates in [\d.]+ s of training \(", proc.stdout, re.M)
    proc = charrnn_inproc("run", "--resume", run, "--iterations", 50, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^done: this session: 20 updates in [\d.]+ s of training \(.*\); update 50 "
                     r"in all, smooth loss", proc.stdout, re.M), proc.stdout


def test_validation_is_not_training_time(data_file):
    """A validation that takes a known time: the speeds leave it out."""
    from charrnn.backends.numpy_backend import NumpyBackend
    from charrnn.data import Corpus

    corpus = Corpus.from_text(TEXT, "text")
    trainer = make_trainer(NumpyBackend("float64"), corpus, iterations=5)
    pause = 0.05

    def slow_validation(*args, **kwargs):
        time.sleep(pause)  # at least this long: a lower bound, not a race
        return 1.0

    trainer.validation_loss = slow_validation
    from charrnn.callbacks import Callback

    class EveryUpdate(Callback):
        name = "validate-every-update"

        def on_update_end(self, trainer) -> None:
            trainer.validate()

    trainer.callbacks.append(EveryUpdate())
    trainer.fit()
    assert trainer.validation_seconds >= 5 * pause
    assert trainer.training_seconds() <= trainer.elapsed() - 5 * pause
    assert trainer.updates_per_second() == pytest.approx(5 / trainer.training_seconds())


def test_a_run_that_reached_its_target_loss_has_nothing_left_on_resume(data_file, tmp_path):
    run = tmp_path / "run"
    # The smooth loss starts at 10 ln K (about 34 here) and falls below 30 within a few hundred
    # updates of this repetitive text.
    proc = charrnn_inproc("run", "--data", data_file, *QUIET_RUN, "--target-loss", 30,
                          "--out", run, *LEAN[2:], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "below --target-loss 30" in proc.stdout
    from charrnn.checkpoint import load_checkpoint

    stopped_at = load_checkpoint(str(run / "latest.npz")).meta["update"]
    for _ in range(2):
        proc = charrnn_inproc("run", "--resume", run, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "no updates to do: the smooth loss" in proc.stdout
        assert "already below --target-loss 30" in proc.stdout
        assert load_checkpoint(str(run / "latest.npz")).meta["update"] == stopped_at
    assert stopped_at > 10
    proc = charrnn_inproc("run", "--resume", run, "--target-loss", 1, "--iterations",
                          stopped_at + 20, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert load_checkpoint(str(run / "latest.npz")).meta["update"] == stopped_at + 20
