"""The lossplot plugin: ``metrics.csv`` and ``loss.png`` in the run directory."""
from __future__ import annotations

import csv
import random
import subprocess
import sys

import pytest
from charrnn.callbacks import Callback
from charrnn.errors import CallbackFailed
from helpers import LEAN, TEXT, Crash

COLUMNS = ["update", "epoch", "loss", "smooth_loss", "val_loss", "updates_per_second"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_text() -> str:
    rng = random.Random(1)
    words = "the quick brown fox jumps over a lazy dog and then runs into the forest".split()
    return " ".join(rng.choice(words) for _ in range(600)) + "\n"


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text(make_text(), encoding="utf-8")
    return path


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


def run_options(*args) -> dict:
    """The options ``charrnn run ARGS`` would pass, plugin options and defaults included."""
    from charrnn.cli import run

    return dict(run.make_context("run", [str(a) for a in args]).params)


def assert_png(path, min_bytes=5000):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > min_bytes


def test_metrics_rows_columns_and_plot(run_charrnn, data_file, tmp_path):
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data_file, "--hidden", 16, "--iterations", 500,
                       "--log-every", 100, "--sample-every", 1000, "--no-report", "--out", out)
    assert proc.returncode == 0, proc.stderr
    header, rows = read_csv(out / "metrics.csv")
    assert header == COLUMNS
    assert [int(r["update"]) for r in rows] == [100, 200, 300, 400, 500]
    for r in rows:
        assert r["val_loss"] == ""  # no validation split
        assert float(r["loss"]) > 0 and float(r["smooth_loss"]) > 0
        assert float(r["updates_per_second"]) > 0
        assert int(r["epoch"]) >= 0
    smooth = [float(r["smooth_loss"]) for r in rows]
    assert smooth[-1] < smooth[0]  # it learns
    assert_png(out / "loss.png")
    assert f"loss plot: {out / 'loss.png'}" in proc.stdout.splitlines()
    # no temporary files left behind
    # no temporary file left; the one hidden file is the run directory's lock
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".charrnn.lock"]


def test_last_update_logged_and_validation_column(run_charrnn, data_file, tmp_path):
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data_file, "--hidden", 16, "--iterations", 250,
                       "--log-every", 100, "--val-frac", 0.1, "--val-every", 100,
                       "--plot-every", 100, "--no-report", "--quiet", "--out", out)
    assert proc.returncode == 0, proc.stderr
    _, rows = read_csv(out / "metrics.csv")
    assert [int(r["update"]) for r in rows] == [100, 200, 250]
    assert all(float(r["val_loss"]) > 0 for r in rows)
    assert "loss plot:" not in proc.stdout  # --quiet
    assert_png(out / "loss.png")


def test_no_plot_still_writes_metrics(run_charrnn, data_file, tmp_path):
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data_file, "--hidden", 16, "--iterations", 200,
                       "--log-every", 50, "--no-plot", "--no-report", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert not (out / "loss.png").exists()
    assert "loss plot:" not in proc.stdout
    header, rows = read_csv(out / "metrics.csv")
    assert header == COLUMNS and len(rows) == 4


def test_options_in_help(run_charrnn):
    import click
    from charrnn.cli import run

    proc = run_charrnn("run", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--plot-every" in proc.stdout and "--no-plot" in proc.stdout
    of_run = {p.name: p for p in run.get_params(click.Context(run))}
    for name in ("plot_every", "plot"):
        assert of_run[name].help and len(of_run[name].help) > 20, name


def test_import_is_cheap():
    code = "import sys, charrnn.plugins.lossplot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plot_loss_draws_with_and_without_points(tmp_path):
    from charrnn.plugins.lossplot import plot_loss

    rows = [{"update": u, "epoch": u // 300, "loss": 50.0, "smooth_loss": 80.0 - u / 20,
             "val_loss": None, "updates_per_second": 1000.0} for u in range(100, 1100, 100)]
    plot_loss(str(tmp_path / "a.png"), rows, 25, [(0, 3.3), (500, 2.5), (1000, 2.0)], "title",
              epochs=[(1, 301), (2, 601), (3, 901)])
    plot_loss(str(tmp_path / "b.png"), [], 25)
    assert_png(tmp_path / "a.png")
    assert_png(tmp_path / "b.png", min_bytes=1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]



def test_resume_after_crash_drops_rows_past_the_checkpoint(run_charrnn, data_file, tmp_path):
    from charrnn.assembly import build_trainer
    from charrnn.rundir import prepare_run_dir

    out = tmp_path / "run"
    options = run_options("--data", data_file, "--hidden", 16, "--iterations", 1000,
                          "--log-every", 100, "--checkpoint-every", 200, "--val-frac", 0.1,
                          "--val-every", 100, "--no-report", "--quiet")
    trainer = build_trainer(options, run_dir=prepare_run_dir(str(out)))
    trainer.callbacks.append(Crash(at=350))
    with pytest.raises(CallbackFailed, match="simulated crash"):
        trainer.fit()
    _, rows = read_csv(out / "metrics.csv")
    # 300, and 350 where the crash stopped the run, are past the checkpoint
    assert [int(r["update"]) for r in rows] == [100, 200, 300, 350]
    before = {r["update"]: r for r in rows}

    proc = run_charrnn("run", "--resume", out, "--iterations", 600)
    assert proc.returncode == 0, proc.stderr
    assert "resuming at update 200" in proc.stdout
    header, rows = read_csv(out / "metrics.csv")
    assert header == COLUMNS
    text = (out / "metrics.csv").read_text(encoding="utf-8")
    assert text.count("update,epoch") == 1  # the header only once
    updates = [int(r["update"]) for r in rows]
    assert updates == [100, 200, 300, 400, 500, 600]
    assert all(a < b for a, b in zip(updates, updates[1:]))
    # rows up to the checkpoint are kept as they were
    assert rows[0] == before["100"] and rows[1] == before["200"]
    assert all(r["val_loss"] for r in rows)
    assert_png(out / "loss.png")


def test_resume_continues_without_duplicates(run_charrnn, data_file, tmp_path):
    out = tmp_path / "run"
    common = ("--log-every", 100, "--quiet")
    proc = run_charrnn("run", "--data", data_file, "--hidden", 16, "--iterations", 250,
                       "--out", out, "--no-report", *common)
    assert proc.returncode == 0, proc.stderr
    with open(out / "metrics.csv", "a", encoding="utf-8") as fh:
        fh.write("260,1,4")  # a row cut short by a crash, past the checkpoint, no newline
    proc = run_charrnn("run", "--resume", out, "--iterations", 450, *common)
    assert proc.returncode == 0, proc.stderr
    _, rows = read_csv(out / "metrics.csv")
    assert [int(r["update"]) for r in rows] == [100, 200, 250, 300, 400, 450]
    assert all(len(r) == len(COLUMNS) and r["smooth_loss"] for r in rows)


def test_no_run_dir_keeps_rows_in_memory(data_file):
    from charrnn.assembly import build_trainer

    trainer = build_trainer(run_options("--data", data_file, "--hidden", 8, "--iterations", 30,
                                        "--log-every", 10, "--quiet", "--no-report"))
    trainer.fit()
    cb = next(c for c in trainer.callbacks if c.name == "lossplot")
    assert [r["update"] for r in cb.rows] == [10, 20, 30]


# -- epoch marks ---------------------------------------------------------------------------------

class EpochsSeen(Callback):
    """Records ``(epoch, update)`` at the first update of each new epoch, as training sees it."""

    name = "epochs-seen"
    order = 1000

    def __init__(self) -> None:
        self.starts = []

    def on_train_begin(self, trainer) -> None:
        self.epoch = trainer.epoch

    def on_update_end(self, trainer) -> None:
        if trainer.epoch != self.epoch:
            self.epoch = trainer.epoch
            self.starts.append((trainer.epoch, trainer.update))


def drawn_marks(fig):
    """What the figure shows of epochs: the lines' updates, the top axis's ticks and labels,
    and the legend's entry for the lines."""
    from charrnn.plugins.lossplot import EPOCH_AXIS_GID, EPOCH_GID

    (ax,) = fig.axes
    lines = [line for line in ax.get_lines() if line.get_gid() == EPOCH_GID]
    xs = []
    for line in lines:
        x0, x1 = line.get_xdata()
        assert x0 == x1  # vertical
        xs.append(x0)
    tops = [c for c in ax.child_axes if c.get_gid() == EPOCH_AXIS_GID]
    ticks = list(tops[0].get_xticks()) if tops else []
    labels = [t.get_text() for t in tops[0].get_xticklabels()] if tops else []
    legend = [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else []
    return {"lines": xs, "ticks": ticks, "labels": labels,
            "legend": [t for t in legend if "epoch" in t]}


def lossplot_of(trainer):
    return next(c for c in trainer.callbacks if c.name == "lossplot")


def marks_of(trainer):
    fig = lossplot_of(trainer).figure(trainer)
    try:
        return drawn_marks(fig)
    finally:
        fig.clear()


def trained(path, *args, run_dir=None, extra=()):
    from charrnn.assembly import build_trainer

    trainer = build_trainer(run_options("--data", path, "--hidden", 8, *LEAN, *args),
                            run_dir=run_dir)
    seen = EpochsSeen()
    trainer.callbacks.extend([*extra, seen])
    trainer.fit()
    return trainer, seen.starts


def test_epochs_are_marked_at_the_update_that_began_them(tmp_path):
    from charrnn.plugins.lossplot import updates_per_epoch

    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    # Two stripes of the 75% kept for training: an epoch is not a pass over the whole file.
    trainer, seen = trained(path, "--seq-length", 10, "--batch-size", 2, "--val-frac", 0.25,
                            "--iterations", 80, "--log-every", 7)
    per_epoch = updates_per_epoch(trainer.stream)
    assert [e for e, _ in seen] == list(range(1, len(seen) + 1)) and len(seen) >= 5
    assert [u for _, u in seen] == [k * per_epoch + 1 for k in range(1, len(seen) + 1)]
    marks = marks_of(trainer)
    assert marks["lines"] == marks["ticks"] == [u for _, u in seen]
    assert marks["labels"] == [f"epoch {e}" for e, _ in seen]
    assert marks["legend"] == ["start of an epoch"]
    # The rows, every 7 updates, could not have placed them: most marks fall between two rows.
    logged = [r["update"] for r in lossplot_of(trainer).rows]
    assert [u for _, u in seen if u not in logged]


def test_many_epochs_are_thinned_to_round_ones(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("abcdefghij klmnopqrst\n", encoding="utf-8")  # 4 updates an epoch
    trainer, seen = trained(path, "--seq-length", 5, "--iterations", 820, "--log-every", 100)
    assert len(seen) == 204
    starts = dict(seen)
    marks = marks_of(trainer)
    assert marks["lines"] == marks["ticks"] == [starts[e] for e in range(20, 201, 20)]
    assert marks["labels"] == ["epoch 20"] + [str(e) for e in range(40, 201, 20)]
    assert marks["legend"] == ["start of an epoch (every 20 epochs marked)"]


@pytest.mark.parametrize("count, step", [(0, 1), (10, 1), (11, 2), (21, 2), (22, 5), (54, 5),
                                         (55, 10), (110, 20), (204, 20), (1099, 100),
                                         (1100, 200), (12_000, 2000)])
def test_marks_come_at_round_intervals_at_most_ten(count, step):
    from charrnn.plugins.lossplot import epoch_marks

    got, marks = epoch_marks(count, 7)
    assert got == step
    assert len(marks) <= 10
    assert marks == [(k, 7 * k + 1) for k in range(step, count + 1, step)]


def test_marks_survive_a_resume_and_the_report_command(tmp_path, capsys):
    from charrnn import RunConfig
    from charrnn.resume import write_end_files
    from charrnn.session import run_session

    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    args = ("--seq-length", 10, "--iterations", 300, "--checkpoint-every", 100, "--log-every", 50)
    whole, seen = trained(path, *args)
    expected = marks_of(whole)
    assert expected["lines"] == [u for _, u in seen] and len(seen) == 7

    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(CallbackFailed, match="simulated crash"):
        trained(path, *args, run_dir=str(out), extra=[Crash(at=150)])
    resumed = run_session(RunConfig(resume=str(out)))
    assert resumed.start_update == 100 and resumed.update == 300
    assert marks_of(resumed) == expected  # marks from before the resume included
    again = write_end_files(str(out), quiet=True)
    assert again.update == 300
    assert marks_of(again) == expected
