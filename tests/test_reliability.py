"""Runs that survive: full disks and size limits for real, divergence caught by the core, a
failing third-party callback named by its plugin, resumes that apply or refuse each option,
honest metrics, restarts and reports after a kill, and the --debug / --no-plugins switches."""
from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy
import pytest
from charrnn.checkpoint import load_checkpoint
from helpers import LEAN, TEXT, assert_one_line_error, charrnn_cmd, charrnn_inproc, console_script, run_options
from test_bad_inputs import snapshot

TINY = ("--hidden", 32, "--seq-length", 10, "--no-gradcheck", "--sample-length", 20)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text(TEXT * 4, encoding="utf-8")
    return path


def train(text_file: Path, out: Path, *extra, cwd=None) -> subprocess.CompletedProcess:
    proc = charrnn_inproc("run", "--data", text_file, *TINY, *extra, "--out", out,
                       cwd=cwd or out.parent)
    assert proc.returncode == 0, proc.stderr
    return proc


def read_rows(path: Path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# -- disks that fill up, limits, read-only places ---------------------------------------------

def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_file_size_limit_mid_run_is_one_line_and_keeps_the_last_checkpoint(text_file, tmp_path):
    run = tmp_path / "run"
    train(text_file, run, "--iterations", 100, "--checkpoint-every", 50, "--quiet")
    before = (run / "latest.npz").read_bytes()
    assert len(before) > 20_000  # so the limit below stops the next checkpoint, not the rest
    proc = subprocess.run([console_script(), "run", "--resume", str(run), "--iterations", "200"],
                          preexec_fn=_file_size_limit(20_000), capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert_one_line_error(proc, "cannot write", "latest.npz", "File too large", "ulimit")
    assert (run / "latest.npz").read_bytes() == before
    assert load_checkpoint(str(run / "latest.npz")).meta["update"] == 100
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    # Without the limit the run goes on from that checkpoint.
    proc = charrnn_inproc("run", "--resume", run, "--iterations", 200, "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "resuming at update 100" in proc.stdout


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 160 KiB tmpfs: room for one pair of checkpoints of the run below, not for the next
    save's temporary file. Needs root (or CAP_SYS_ADMIN); skipped elsewhere."""
    mount = shutil.which("mount")
    point = tmp_path / "disk"
    point.mkdir()
    if mount is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run([mount, "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(point)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(text_file, small_tmpfs, tmp_path):
    run = small_tmpfs / "run"
    proc = charrnn_inproc("run", "--data", text_file, *TINY, "--iterations", 400,
                       "--checkpoint-every", 50, "--no-plot", "--no-report", "--quiet",
                       "--out", run, cwd=tmp_path)
    assert_one_line_error(proc, "cannot write", str(run), "No space left on device",
                          "free some disk space")
    ckpt = load_checkpoint(str(run / "latest.npz"))
    assert ckpt.meta["update"] % 50 == 0 and ckpt.meta["update"] < 400
    assert numpy.isfinite(ckpt.params["W"]).all()
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_a_read_only_run_directory_is_refused_untouched(text_file, small_tmpfs, tmp_path):
    trained = tmp_path / "trained"
    train(text_file, trained, "--iterations", 20, "--checkpoint-every", 10, *LEAN)
    run = small_tmpfs / "run"
    shutil.copytree(trained, run)
    before = snapshot(run)
    remount = subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)],
                             capture_output=True, text=True)
    if remount.returncode != 0:
        pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
    proc = charrnn_inproc("run", "--resume", run, "--iterations", 40, cwd=tmp_path)
    assert_one_line_error(proc, "cannot write", "Read-only file system")
    assert snapshot(run) == before


# -- divergence -------------------------------------------------------------------------------

def test_divergence_is_caught_by_the_core_without_any_callback_or_run_directory(text_file):
    from charrnn.assembly import build_trainer
    from charrnn.trainer import DIVERGED

    trainer = build_trainer(run_options("--data", text_file, "--hidden", 8, "--eta", "1e308",
                                        "--iterations", 50, *LEAN))
    trainer.callbacks = []
    with numpy.errstate(all="ignore"):
        trainer.fit()
    assert trainer.stop_reason.startswith(DIVERGED)
    assert trainer.diverged_at == trainer.update < 50
    assert not trainer.can_save


def test_divergence_on_resume_keeps_the_last_good_checkpoint(text_file, tmp_path):
    run = tmp_path / "run"
    train(text_file, run, "--iterations", 40, "--checkpoint-every", 20, "--quiet")
    before = {name: (run / name).read_bytes() for name in ("latest.npz", "best.npz")}
    proc = charrnn_inproc("run", "--resume", run, "--iterations", 80, "--eta", "1e308", cwd=tmp_path)
    assert_one_line_error(proc, "training diverged", "lower --eta", "keeps the last finite state")
    assert {name: (run / name).read_bytes() for name in before} == before
    report = (run / "report.md").read_text(encoding="utf-8")
    assert "training diverged" in report


# -- a third-party callback that fails --------------------------------------------------------

FAULTY = '''
from charrnn import hookimpl
from charrnn.callbacks import Callback


class Faulty(Callback):
    name = "faulty"
    order = 50

    def on_update_end(self, trainer):
        if trainer.update == 30:
            raise ZeroDivisionError("the plugin divided by zero")


@hookimpl
def register_callbacks(register):
    register(Faulty)
'''


@pytest.fixture(scope="module")
def faulty_site(tmp_path_factory) -> Path:
    """A distribution ``charrnn-faulty`` installed with pip into its own folder; found through
    its ``charrnn`` entry point, as any installed plugin is."""
    work = tmp_path_factory.mktemp("faulty")
    src = work / "src"
    src.mkdir()
    (src / "charrnn_faulty.py").write_text(FAULTY, encoding="utf-8")
    (src / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "charrnn-faulty"
        version = "0.1.0"
        [project.entry-points.charrnn]
        faulty = "charrnn_faulty"
        [tool.setuptools]
        py-modules = ["charrnn_faulty"]
    '''), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps",
                           "--no-build-isolation", "--target", str(work / "site"), str(src)],
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work / "site"


def test_a_failing_plugin_callback_is_named_and_never_saved(text_file, faulty_site, tmp_path):
    run = tmp_path / "run"
    proc = charrnn_inproc("run", "--data", text_file, *TINY, "--iterations", 60,
                       "--checkpoint-every", 20, "--quiet", "--out", run, cwd=tmp_path,
                       env={"PYTHONPATH": str(faulty_site)})
    line = assert_one_line_error(proc, "callback 'faulty'", "plugin 'faulty' of charrnn-faulty "
                                 "0.1.0", "update 30", "ZeroDivisionError",
                                 "the plugin divided by zero", "--no-plugins")
    assert "Traceback" not in line
    assert proc.returncode == 1
    ckpt = load_checkpoint(str(run / "latest.npz"))
    assert ckpt.meta["update"] == 20  # the failure at 30 saved nothing
    # Built-ins only: the same run dir continues and finishes.
    for how in ({"args": ("--no-plugins",), "env": {}},
                {"args": (), "env": {"CHARRNN_DISABLE_PLUGINS": "1"}}):
        proc = charrnn_inproc(*how["args"], "run", "--resume", run, "--iterations",
                           80 if how["args"] else 100, "--quiet", cwd=tmp_path,
                           env={"PYTHONPATH": str(faulty_site), **how["env"]})
        assert proc.returncode == 0, proc.stderr
    assert load_checkpoint(str(run / "latest.npz")).meta["update"] == 100
    listing = charrnn_inproc("--no-plugins", "plugins", "--json", cwd=tmp_path,
                          env={"PYTHONPATH": str(faulty_site)})
    names = {p["name"] for p in json.loads(listing.stdout)["plugins"]}
    assert "faulty" not in names and "checkpoints" in names
    listing = charrnn_inproc("plugins", "--json", cwd=tmp_path, env={"PYTHONPATH": str(faulty_site)})
    assert "faulty" in {p["name"] for p in json.loads(listing.stdout)["plugins"]}


def test_debug_shows_the_traceback(tmp_path):
    # The traceback is what the interpreter prints as the process ends: a real process.
    proc = charrnn_cmd("--debug", "run", "--data", tmp_path / "nowhere.txt", cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "CharrnnError" in proc.stderr
    proc = charrnn_cmd("run", "--data", tmp_path / "nowhere.txt", cwd=tmp_path,
                       env={"CHARRNN_DEBUG": "1"})
    assert "Traceback" in proc.stderr


# -- resume applies or refuses ----------------------------------------------------------------

def test_resume_applies_a_new_learning_rate_and_says_so(text_file, tmp_path):
    run = tmp_path / "run"
    train(text_file, run, "--iterations", 40, "--checkpoint-every", 20, "--quiet")
    proc = charrnn_inproc("run", "--resume", run, "--iterations", 60, "--eta", 0.02,
                       "--temperature", 0.5, "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "applying --eta 0.02 (was 0.1), --iterations 60 (was 40), --temperature 0.5 (was " \
           "1.0)" in proc.stdout
    assert "optimizer adagrad (eta 0.02" in proc.stdout
    ckpt = load_checkpoint(str(run / "latest.npz"))
    assert ckpt.meta["optimizer_state"]["eta"] == 0.02  # the optimizer really used it
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["eta"] == 0.02 and config["temperature"] == 0.5
    assert "| `--eta` | 0.02 |" in (run / "report.md").read_text(encoding="utf-8")


def test_a_new_learning_rate_changes_the_updates(text_file, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        train(text_file, run, "--iterations", 20, "--checkpoint-every", 20, *LEAN)
    for run, eta in ((a, ()), (b, ("--eta", 0.01))):
        proc = charrnn_inproc("run", "--resume", run, "--iterations", 40, *eta, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    pa, pb = (load_checkpoint(str(r / "latest.npz")).params["W"] for r in (a, b))
    assert not numpy.array_equal(pa, pb)


# -- honest metrics ---------------------------------------------------------------------------

def test_metrics_carry_a_validation_loss_only_where_it_was_computed(text_file, tmp_path):
    run = tmp_path / "run"
    proc = train(text_file, run, "--iterations", 60, "--log-every", 10, "--val-frac", 0.2,
                 "--val-every", 25, "--no-plot", "--no-report")
    rows = read_rows(run / "metrics.csv")
    with_val = [int(r["update"]) for r in rows if r["val_loss"]]
    assert with_val == [50, 60]  # 25 is not a row; the last update (60) is evaluated
    assert [int(r["update"]) for r in rows] == [10, 20, 30, 40, 50, 60]
    # The progress line says how old a shown validation loss is.
    assert "updates ago)" in proc.stdout


# -- kills, restarts and reports --------------------------------------------------------------

def test_a_run_killed_before_its_first_checkpoint_restarts_in_the_same_directory(text_file,
                                                                                tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}", encoding="utf-8")
    (run / "metrics.csv").write_text("update,epoch\n3,0\n", encoding="utf-8")
    (run / ".latest.npz.999999.0badc0de.tmp").write_bytes(b"half a checkpoint")
    proc = charrnn_inproc("run", "--resume", run, cwd=tmp_path)
    assert_one_line_error(proc, "no checkpoint", f"--out {run}")
    proc = charrnn_inproc("run", "--data", text_file, *TINY, "--iterations", 20, "--log-every", 10,
                       "--quiet", "--out", run, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "starting over in" in proc.stdout
    assert [int(r["update"]) for r in read_rows(run / "metrics.csv")] == [10, 20]
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_temporary_files_of_a_killed_save_are_removed_at_the_next_start(text_file, tmp_path):
    run = tmp_path / "run"
    train(text_file, run, "--iterations", 20, "--checkpoint-every", 10, *LEAN)
    stale = run / ".latest.npz.999999.0badc0de.tmp"
    stale.write_bytes(b"half a checkpoint")
    proc = charrnn_inproc("run", "--resume", run, "--iterations", 30, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists()


def test_a_run_killed_after_its_last_checkpoint_gets_its_report(text_file, tmp_path):
    run = tmp_path / "run"
    train(text_file, run, "--iterations", 30, "--checkpoint-every", 10, "--quiet")
    (run / "report.md").unlink()
    (run / "loss.png").unlink()
    proc = charrnn_inproc("run", "--resume", run, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "writing its end-of-run files" in proc.stdout
    assert (run / "report.md").exists() and (run / "loss.png").exists()
    assert load_checkpoint(str(run / "latest.npz")).meta["update"] == 30
    # Once written, the run is finished: resuming it again asks for more updates.
    proc = charrnn_inproc("run", "--resume", run, cwd=tmp_path)
    assert_one_line_error(proc, "already done 30 updates")
    # charrnn report writes both again, whenever asked, without training.
    (run / "report.md").unlink()
    before = (run / "latest.npz").read_bytes()
    proc = charrnn_inproc("report", run, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "report and plot written" in proc.stdout
    assert "update 30" in (run / "report.md").read_text(encoding="utf-8") or \
        "30 of 30" in (run / "report.md").read_text(encoding="utf-8")
    assert (run / "latest.npz").read_bytes() == before


def test_ctrl_c_inside_an_updates_callbacks_keeps_the_last_periodic_checkpoint(tmp_path):
    """A Ctrl-C that lands among an update's callbacks (here: after the sampler, before the
    metrics row and the checkpoint of update 60) must not end in a checkpoint of update 60,
    whose metrics row was never written: a resume from it would lose that row for good."""
    import numpy
    from charrnn.backends.numpy_backend import NumpyBackend
    from charrnn.callbacks import Callback, Order
    from charrnn.checkpoint import load_checkpoint
    from charrnn.data import Corpus
    from charrnn.plugins.checkpointing import Checkpoints
    from charrnn.metrics import MetricsLog
    from helpers import make_trainer

    class CtrlC(Callback):
        name = "ctrl-c"
        order = Order.SAMPLER + 1  # between the sampler and the metrics row

        def on_update_end(self, trainer) -> None:
            if trainer.update == 60:
                raise KeyboardInterrupt

    corpus = Corpus.from_text("the quick brown fox jumps over the lazy dog. " * 40, "text")
    plot = MetricsLog(every=10)
    trainer = make_trainer(NumpyBackend("float64"), corpus, iterations=100,
                           callbacks=[Checkpoints(every=40), plot, CtrlC()])
    trainer.run_dir = str(tmp_path)
    trainer.fit()
    assert trainer.stop_reason == "interrupted" and trainer.update == 60
    assert trainer.interrupted_mid_update and not trainer.can_save
    assert load_checkpoint(str(tmp_path / "latest.npz")).meta["update"] == 40
    rows = (tmp_path / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [10, 20, 30, 40, 50]
    assert numpy.isfinite(trainer.smooth_loss_value())
