"""What a run says about itself is true: its stop line, its speeds and its report, after resumes
and when ``charrnn report`` writes the report again."""
from __future__ import annotations

import re

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


def test_validation_is_not_training_time(data_file, monkeypatch):
    """A validation that takes a known time on a clock the test drives: the speeds leave it
    out."""
    import charrnn.trainer
    from charrnn.backends.numpy_backend import NumpyBackend
    from charrnn.callbacks import Callback
    from charrnn.data import Corpus

    clock = [1000.0]

    class Clock:
        """The trainer's clock: it moves only when the test moves it."""

        @staticmethod
        def perf_counter() -> float:
            clock[0] += 0.001  # every reading, a millisecond
            return clock[0]

    monkeypatch.setattr(charrnn.trainer, "time", Clock)
    corpus = Corpus.from_text(TEXT, "text")
    trainer = make_trainer(NumpyBackend("float64"), corpus, iterations=5)

    def slow_validation(*args, **kwargs):
        clock[0] += 10.0  # ten seconds of validation
        return 1.0

    trainer.validation_loss = slow_validation

    class EveryUpdate(Callback):
        name = "validate-every-update"

        def on_update_end(self, trainer) -> None:
            trainer.validate()

    trainer.callbacks.append(EveryUpdate())
    trainer.fit()
    assert trainer.validation_seconds == pytest.approx(50.0, abs=0.01)
    assert trainer.elapsed() >= 50.0
    assert trainer.training_seconds() == pytest.approx(trainer.elapsed() - 50.0, abs=0.01)
    assert trainer.training_seconds() < 1.0
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
