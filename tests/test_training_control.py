"""Ending training and the callback contract: --target-loss, validation, trainer.stop(),
callback order, on_exception, and the interval options' ranges."""
from __future__ import annotations

import csv
import math
import re

import pytest
from charrnn.callbacks import Callback
from charrnn.checkpoint import load_checkpoint
from helpers import TEXT, assert_one_line_error, run_options


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))




@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


# -- --target-loss -----------------------------------------------------------------------------

def test_target_loss_stops_after_the_first_update(run_charrnn, data_file, tmp_path):
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data_file, "--hidden", 16, "--iterations", 500,
                       "--target-loss", 1000, "--no-gradcheck", "--no-plot", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    final = [line for line in proc.stdout.splitlines() if line.startswith("stopped")]
    assert len(final) == 1, proc.stdout
    assert "below --target-loss 1000" in final[0] and ": 1 updates in" in final[0]
    assert "done:" not in proc.stdout
    assert re.search(r"^update +1/500 ", proc.stdout, re.M), proc.stdout  # the last progress line

    latest = load_checkpoint(str(out / "latest.npz"))
    assert latest.meta["update"] == 1
    assert load_checkpoint(str(out / "best.npz")).meta["update"] == 1
    rows = read_csv(out / "metrics.csv")
    assert [int(r["update"]) for r in rows] == [1]
    assert rows[0]["smooth_loss"] == f"{latest.meta['smooth_loss']:.6f}"
    assert float(rows[0]["smooth_loss"]) < 1000
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| updates done | 1 of 500 requested |" in report
    assert "| ended | stopped: smooth loss" in report and "below --target-loss 1000" in report
    assert "`best.npz`: update 1," in report


def test_unreached_target_loss_does_not_stop(run_charrnn, data_file, tmp_path):
    proc = run_charrnn("run", "--data", data_file, "--hidden", 8, "--iterations", 20,
                       "--target-loss", 0.001, "--no-gradcheck", "--no-plot", "--no-report",
                       "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert "done: 20 updates" in proc.stdout and "stopped" not in proc.stdout
    assert load_checkpoint(str(tmp_path / "run" / "latest.npz")).meta["update"] == 20


def test_validation_loss_is_shown_logged_and_picks_best(run_charrnn, data_file, tmp_path):
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data_file, "--hidden", 16, "--iterations", 120,
                       "--val-frac", 0.2, "--val-every", 20, "--checkpoint-every", 20,
                       "--log-every", 20, "--no-gradcheck", "--no-plot", "--no-report",
                       "--out", out)
    assert proc.returncode == 0, proc.stderr
    shown = re.findall(r"^update +(\d+)/120 .* val (\d+\.\d{3}) nats/char \((\d+\.\d{3}) bpc\)$",
                       proc.stdout, re.M)
    assert [int(u) for u, _, _ in shown] == [20, 40, 60, 80, 100, 120], proc.stdout
    for _, nats, bpc in shown:
        assert float(bpc) == pytest.approx(float(nats) / math.log(2), abs=0.002)

    rows = read_csv(out / "metrics.csv")
    assert [int(r["update"]) for r in rows] == [20, 40, 60, 80, 100, 120]
    vals = {int(r["update"]): float(r["val_loss"]) for r in rows}
    for (u, nats, _) in shown:
        assert f"{vals[int(u)]:.3f}" == nats

    latest = load_checkpoint(str(out / "latest.npz"))
    assert latest.meta["logs"]["val_loss"] == pytest.approx(vals[120], abs=1e-6)
    assert latest.meta["logs"]["val_update"] == 120
    best = load_checkpoint(str(out / "best.npz"))
    logs = best.meta["logs"]
    assert "val_loss" in logs and "val_bpc" in logs
    state = best.meta["callbacks"]["checkpoints"]
    assert state["best_update"] == best.meta["update"]
    assert state["best"] == logs["val_loss"]  # best is judged by the validation loss...
    assert state["best"] != best.meta["smooth_loss"]  # ...not by the smooth loss
    lowest = min(vals, key=vals.get)
    assert best.meta["update"] == lowest
    assert state["best"] == pytest.approx(vals[lowest], abs=1e-6)


# -- trainer.stop() ----------------------------------------------------------------------------

class Recorder(Callback):
    """Records every event it sees in a shared log, tagged with its ``tag``."""

    name = "recorder"

    def __init__(self, log: list, tag, order: int = 0) -> None:
        self.log = log
        self.tag = tag
        self.order = order  # instance attribute: the trainer sorts by getattr(cb, "order")

    def on_train_begin(self, trainer) -> None:
        self.log.append(("begin", self.tag, trainer.update))

    def on_update_end(self, trainer) -> None:
        self.log.append(("update", self.tag, trainer.update))

    def on_train_end(self, trainer) -> None:
        self.log.append(("end", self.tag, trainer.update))

    def on_exception(self, trainer, exc) -> None:
        self.log.append(("exception", self.tag, exc))


class StopAt(Recorder):
    name = "stop_at"

    def __init__(self, log: list, at: int, reason: str) -> None:
        super().__init__(log, "stopper")
        self.at, self.reason = at, reason

    def on_update_end(self, trainer) -> None:
        super().on_update_end(trainer)
        if trainer.update == self.at:
            trainer.stop(self.reason)


def test_stop_ends_fit_after_that_updates_callbacks(tmp_path, data_file, capsys):
    from charrnn.assembly import build_trainer
    from charrnn.rundir import prepare_run_dir

    out = tmp_path / "run"
    trainer = build_trainer(run_options("--data", data_file, "--hidden", 8, "--iterations", 50,
                                        "--no-gradcheck", "--no-plot"),
                            run_dir=prepare_run_dir(str(out)))
    builtin = [cb.name for cb in trainer.callbacks]
    assert {"checkpoints", "lossplot", "sampler", "progress", "report"} <= set(builtin)
    log: list = []
    trainer.callbacks.insert(0, StopAt(log, at=5, reason="x"))  # runs before every built-in
    trainer.callbacks.append(Recorder(log, "last"))  # and this one after them all
    trainer.fit()

    assert trainer.update == 5
    assert trainer.should_stop and trainer.stop_reason == "x"
    # the flag is read once every callback has seen update 5
    assert [e[2] for e in log if e[:2] == ("update", "last")] == [1, 2, 3, 4, 5]
    assert ("end", "stopper", 5) in log and log[-1] == ("end", "last", 5)
    # every built-in's on_train_end ran (the defaults put none of this at update 5 otherwise)
    assert load_checkpoint(str(out / "latest.npz")).meta["update"] == 5
    assert [int(r["update"]) for r in read_csv(out / "metrics.csv")] == [5]
    sampler = next(cb for cb in trainer.callbacks if cb.name == "sampler")
    assert [s[0] for s in sampler.samples] == [0, 5]
    assert "| ended | stopped: x |" in (out / "report.md").read_text(encoding="utf-8")
    printed = capsys.readouterr().out
    assert re.search(r"^update +5/50 ", printed, re.M), printed
    assert f"report: {out / 'report.md'}" in printed


# -- order and exceptions ----------------------------------------------------------------------

def _trainer(callbacks, iterations=3):
    """A small trainer built from real parts, with only the given callbacks."""
    from charrnn.data import Corpus
    from charrnn.assembly import make_backend
    from helpers import make_trainer

    backend = make_backend("numpy", "float64")
    corpus = Corpus.from_text(TEXT, "test")
    return make_trainer(backend, corpus, hidden=8, iterations=iterations, callbacks=callbacks)


def test_callbacks_run_in_ascending_order():
    log: list = []
    trainer = _trainer([Recorder(log, 30, order=30), Recorder(log, 10, order=10),
                        Recorder(log, 20, order=20)])
    assert [cb.order for cb in trainer.callbacks] == [10, 20, 30]
    trainer.fit()
    assert trainer.update == 3
    updates = [(u, tag) for event, tag, u in log if event == "update"]
    assert updates == [(u, o) for u in (1, 2, 3) for o in (10, 20, 30)]
    assert [tag for event, tag, _ in log if event == "begin"] == [10, 20, 30]
    assert [tag for event, tag, _ in log if event == "end"] == [10, 20, 30]


class RaiseAt(Recorder):
    def __init__(self, log, at, exc, order) -> None:
        super().__init__(log, "raiser", order=order)
        self.at, self.exc = at, exc

    def on_update_end(self, trainer) -> None:
        super().on_update_end(trainer)
        if trainer.update == self.at:
            raise self.exc


def test_exception_in_a_callback_stops_the_run_and_is_reported_under_its_name():
    from charrnn.errors import CallbackFailed
    from charrnn.trainer import CALLBACK_FAILED

    log: list = []
    boom = RuntimeError("boom at 3")
    trainer = _trainer([Recorder(log, "before", order=10), RaiseAt(log, 3, boom, order=20),
                        Recorder(log, "after", order=30)], iterations=10)
    with pytest.raises(CallbackFailed, match="failed in on_update_end at update 3") \
            as info:
        trainer.fit()
    assert info.value.__cause__ is boom
    assert "boom at 3" in str(info.value)
    assert trainer.update == 3
    exceptions = [(tag, exc) for event, tag, exc in log if event == "exception"]
    assert [tag for tag, _ in exceptions] == ["before", "raiser", "after"]
    assert all(exc is info.value for _, exc in exceptions)
    # Every callback still ends (reports, plots), but nothing may save the state after it.
    assert [e[1] for e in log if e[0] == "end"] == ["before", "raiser", "after"]
    assert not trainer.can_save
    assert ("update", "before", 3) in log
    assert trainer.stop_reason == CALLBACK_FAILED


def test_keyboard_interrupt_stops_and_still_ends_the_run(tmp_path, data_file):
    from charrnn.assembly import build_trainer
    from charrnn.rundir import prepare_run_dir
    from charrnn.trainer import INTERRUPTED

    out = tmp_path / "run"
    trainer = build_trainer(run_options("--data", data_file, "--hidden", 8, "--iterations", 50,
                                        "--no-gradcheck", "--no-plot", "--no-report", "--quiet"),
                            run_dir=prepare_run_dir(str(out)))
    log: list = []
    trainer.callbacks.append(RaiseAt(log, 3, KeyboardInterrupt(), order=0))
    trainer.fit()  # Ctrl-C is not re-raised: the run ends
    assert trainer.update == 3 and trainer.stop_reason == INTERRUPTED
    events = [e[0] for e in log]
    assert events == ["begin", "update", "update", "update", "exception", "end"]
    # It came among update 3's callbacks, so update 3 is not saved: the run had no periodic
    # checkpoint yet, and starts over.
    assert not (out / "latest.npz").exists()


def test_keyboard_interrupt_between_updates_saves_where_it_stopped(tmp_path, data_file):
    """Ctrl-C inside an update's computation (where it nearly always lands) leaves the last
    whole update, which is saved."""
    from charrnn.assembly import build_trainer
    from charrnn.rundir import prepare_run_dir
    from charrnn.trainer import INTERRUPTED

    out = tmp_path / "run"
    trainer = build_trainer(run_options("--data", data_file, "--hidden", 8, "--iterations", 50,
                                        "--no-gradcheck", "--no-plot", "--no-report", "--quiet"),
                            run_dir=prepare_run_dir(str(out)))
    step = trainer.train_step

    def interrupted_step():
        if trainer.update == 3:
            raise KeyboardInterrupt
        return step()

    trainer.train_step = interrupted_step
    trainer.fit()
    assert trainer.update == 3 and trainer.stop_reason == INTERRUPTED
    assert trainer.can_save and not trainer.interrupted_mid_update
    assert load_checkpoint(str(out / "latest.npz")).meta["update"] == 3


# -- interval options --------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, expected", [
    ("--sample-every", "0", "0 is not in the range x>=1"),
    ("--log-every", "0", "0 is not in the range x>=1"),
    ("--plot-every", "0", "0 is not in the range x>=1"),
    ("--val-every", "0", "0 is not in the range x>=1"),
    ("--checkpoint-every", "-1", "-1 is not in the range x>=1"),
    ("--sample-every", "-5", "-5 is not in the range x>=1"),
    ("--temperature", "0", "0.0 is not in the range x>0"),
    ("--sample-length", "0", "0 is not in the range 1<=x<=1000000"),
    ("--target-loss", "0", "0.0 is not in the range x>0"),
])
def test_interval_and_sampling_options_out_of_range(run_charrnn, data_file, tmp_path, option,
                                                    value, expected):
    out = tmp_path / "never"
    proc = run_charrnn("run", "--data", data_file, "--iterations", 5, "--out", out,
                       option, value)
    assert_one_line_error(proc, f"'{option}'", expected)
    assert not out.exists()
    assert proc.stdout == ""
