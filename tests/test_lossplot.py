"""The lossplot plugin: ``metrics.csv`` and ``loss.png`` in the run directory."""
from __future__ import annotations

import csv
import random
import subprocess
import sys

import pytest
from charrnn.errors import CallbackFailed
from helpers import Crash

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
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


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
    proc = run_charrnn("run", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--plot-every" in proc.stdout and "--no-plot" in proc.stdout


def test_import_is_cheap():
    code = "import sys, charrnn.plugins.lossplot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plot_loss_draws_with_and_without_points(tmp_path):
    from charrnn.plugins.lossplot import plot_loss

    rows = [{"update": u, "epoch": u // 300, "loss": 50.0, "smooth_loss": 80.0 - u / 20,
             "val_loss": None, "updates_per_second": 1000.0} for u in range(100, 1100, 100)]
    plot_loss(str(tmp_path / "a.png"), rows, 25, [(0, 3.3), (500, 2.5), (1000, 2.0)], "title")
    plot_loss(str(tmp_path / "b.png"), [], 25)
    assert_png(tmp_path / "a.png")
    assert_png(tmp_path / "b.png", min_bytes=1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]




def test_resume_after_crash_drops_rows_past_the_checkpoint(run_charrnn, data_file, tmp_path):
    from charrnn.session import build_trainer, prepare_run_dir

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
    from charrnn.session import build_trainer

    trainer = build_trainer(run_options("--data", data_file, "--hidden", 8, "--iterations", 30,
                                        "--log-every", 10, "--quiet", "--no-report"))
    trainer.fit()
    cb = next(c for c in trainer.callbacks if c.name == "lossplot")
    assert [r["update"] for r in cb.rows] == [10, 20, 30]
