"""``charrnn sweep`` with real components: Optuna's storage and sampler, a Dask LocalCluster of
worker processes, a scheduler and a worker started as their own processes, and real
``charrnn run`` trials on a small text. Nothing of Dask or Optuna is mocked."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest
from charrnn.checkpoint import load_checkpoint
from helpers import assert_one_line_error, charrnn_cmd, console_script

#: End-to-end tier (real Dask clusters and trial processes): `python -m pytest -m e2e`.
pytestmark = pytest.mark.e2e

optuna = pytest.importorskip("optuna")
psutil = pytest.importorskip("psutil")  # comes with distributed

TEXT_CHARS = 20_000
#: The search every test shares: a small model, a learning rate on a log scale.
SEARCH = ["--set", "hidden=12", "--set", "gradcheck=false", "--set", "sample-length=40",
          "--set", "report-passage-length=40", "--param", "eta=log:1e-3:1e-1"]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    from charrnn.data import default_text

    path = tmp_path_factory.mktemp("text") / "book.txt"
    path.write_text(default_text()[:TEXT_CHARS], encoding="utf-8")
    return path


def sweep_argv(out: Path, text: Path, *extra) -> List[str]:
    return ["sweep", "--out", str(out), "--set", f"data={text}", *SEARCH, *map(str, extra)]


def trials_of(sweep_dir: Path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="charrnn-sweep",
                              storage=f"sqlite:///{sweep_dir / 'study.db'}")
    return study.get_trials(deepcopy=False)


def states(trials) -> List[str]:
    return sorted(t.state.name for t in trials if not t.user_attrs.get("interrupted"))


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background test run has it ignored


def start(argv: List[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([console_script(), *argv], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=_default_sigint)


# -- an interrupted sweep on a local cluster, run again to the end -----------------------------

@pytest.fixture(scope="module")
def resumed(tmp_path_factory, text_file):
    """4 trials on a LocalCluster of 2 workers, Ctrl-C once the first trial has finished, then
    the same command again."""
    work = tmp_path_factory.mktemp("resumed")
    out = work / "sweep"
    argv = sweep_argv(out, text_file, "--trials", 4, "--workers", 2, "--iterations", 1000)
    proc = start(argv, work)
    first: List[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        first.append(line)
        if line.startswith("trial "):
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C at the terminal: the whole group
            break
    rest, _ = proc.communicate(timeout=120)
    before = {t.number: (t.state.name, t.value) for t in trials_of(out)}
    again = charrnn_cmd(*argv, cwd=work, timeout=300)
    return {"out": out, "work": work, "first": "".join(first) + rest, "code": proc.returncode,
            "before": before, "again": again, "argv": argv}


def test_ctrl_c_ends_the_sweep_in_one_line(resumed):
    assert resumed["code"] == 130, resumed["first"]
    assert resumed["first"].rstrip().endswith("Interrupted."), resumed["first"]
    assert "Traceback" not in resumed["first"]


def test_the_same_command_finishes_the_sweep_and_keeps_finished_trials(resumed):
    again = resumed["again"]
    assert again.returncode == 0, again.stdout + again.stderr
    trials = trials_of(resumed["out"])
    assert states(trials) == ["COMPLETE"] * 4
    finished_before = {n: v for n, (s, v) in resumed["before"].items() if s == "COMPLETE"}
    assert finished_before  # at least the trial whose line came before Ctrl-C
    for number, value in finished_before.items():  # kept, not run again
        assert trials[number].state.name == "COMPLETE" and trials[number].value == value
    interrupted = [t for t in trials if t.user_attrs.get("interrupted")]
    if interrupted:  # run again, resuming their run directories
        assert "running again" in again.stdout
        rerun_dirs = {t.user_attrs["run_dir"] for t in trials if t.state.name == "COMPLETE"}
        # (a trial interrupted before it was submitted has no directory: it starts anew)
        assert {t.user_attrs["run_dir"] for t in interrupted if "run_dir" in t.user_attrs} \
            <= rerun_dirs


def test_every_trial_is_a_run_directory_with_its_report(resumed):
    trials = [t for t in trials_of(resumed["out"]) if t.state.name == "COMPLETE"]
    for t in trials:
        run_dir = Path(t.user_attrs["run_dir"])
        assert (run_dir / "report.md").is_file() and (run_dir / "latest.npz").is_file()
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        assert config["eta"] == pytest.approx(t.params["eta"])
        assert config["iterations"] == 1000 and config["val_frac"] == 0.1
    dirs = sorted((resumed["out"] / "trials").iterdir())
    assert len(dirs) == 4


def test_results_table_plots_report_and_best_command(resumed):
    out, stdout = resumed["out"], resumed["again"].stdout
    trials = [t for t in trials_of(out) if t.state.name == "COMPLETE"]
    best = min(trials, key=lambda t: t.value)
    rows = [line.split() for line in stdout.splitlines() if re.match(r"^\d+\s+complete", line)]
    assert [int(r[0]) for r in rows] == [t.number for t in sorted(trials, key=lambda t: t.value)]
    assert (out / "params.png").stat().st_size > 0 and (out / "history.png").stat().st_size > 0
    report = (out / "sweep.md").read_text(encoding="utf-8")
    link = os.path.relpath(Path(best.user_attrs["run_dir"]) / "report.md", out)
    assert f"]({link})" in report and f"**{best.value:.4f}**" in report
    command = re.search(r"^  (charrnn run .*)$", stdout, re.M).group(1)
    assert f"--eta {best.params['eta']!r}" in command and "--iterations 1000" in command
    shown = charrnn_cmd("sweep", "--show", out, cwd=resumed["work"])
    assert shown.returncode == 0 and command in shown.stdout


def test_the_best_command_trains_the_best_trial_again(resumed, tmp_path):
    """The printed command, run as it is (with a shorter budget), gives the same run."""
    out = resumed["out"]
    best = min((t for t in trials_of(out) if t.state.name == "COMPLETE"), key=lambda t: t.value)
    command = best.user_attrs["command"].split()[2:]  # without "charrnn run"
    at = command.index("--iterations")
    command[at + 1] = "30"
    command[command.index("--out") + 1] = str(tmp_path / "again")
    proc = charrnn_cmd("run", *command, "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((tmp_path / "again" / "config.json").read_text(encoding="utf-8"))
    trial = json.loads((Path(best.user_attrs["run_dir"]) / "config.json").read_text("utf-8"))
    for key in ("eta", "hidden", "val_frac", "data", "gradcheck"):
        assert config[key] == trial[key], key


# -- a worker killed after its trial completed, in the middle of its next ----------------------

def _trial_processes(sweep: subprocess.Popen) -> Dict[int, psutil.Process]:
    """The ``charrnn run`` processes of the sweep's trials, by trial number."""
    found = {}
    for child in psutil.Process(sweep.pid).children(recursive=True):
        try:
            cmdline = child.cmdline()
            out = Path(cmdline[cmdline.index("--out") + 1])
        except (psutil.Error, ValueError, IndexError):
            continue
        if out.name.startswith("trial-"):
            found[int(out.name.split("-")[1])] = child
    return found


def test_a_killed_worker_costs_at_most_its_trial_and_never_reruns_a_finished_one(tmp_path,
                                                                                 text_file):
    """The worker that ran trial 0 is killed once trial 0 has recorded its outcome (its result
    may not have reached the sweep yet, so Dask may run that task again) and while it trains
    another trial. Trial 0 is never trained again; the interrupted trial is resumed, or started
    over, on a live worker; every trial ends."""
    out = tmp_path / "sweep"
    proc = start(sweep_argv(out, text_file, "--trials", 4, "--workers", 2,
                            "--iterations", 3000), tmp_path)
    outcome = out / "logs" / "trial-0000.outcome.json"
    worker = killed = None
    deadline = time.monotonic() + 180  # a guard against a hang, not a timing assumption
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        running = _trial_processes(proc)
        if worker is None and 0 in running:
            try:
                worker = running[0].parent()  # the Dask worker running trial 0
            except psutil.Error:
                continue
        if worker is None or not outcome.exists():
            continue
        for number, child in running.items():
            try:
                mine = number != 0 and child.parent() == worker
            except psutil.Error:
                continue
            metrics = out / "trials" / f"trial-{number:04d}" / "metrics.csv"
            if mine and metrics.exists() and len(metrics.read_text().splitlines()) > 2:
                killed = number
                worker.kill()  # mid-trial, with trial 0's result perhaps still on it
                break
    output, _ = proc.communicate(timeout=240)
    assert killed is not None, output
    assert proc.returncode == 0, output
    trials = trials_of(out)
    assert len([t for t in trials if t.state.name in ("COMPLETE", "FAIL")]) == 4, output
    logs = {p.name: p.read_text() for p in (out / "logs").glob("*.log")}
    starts = {name: text.count("\n$ ") + text.startswith("$ ") for name, text in logs.items()}
    # Trial 0 trained once, whatever Dask did with its task after the worker was lost.
    assert starts["trial-0000.log"] == 1, logs["trial-0000.log"]
    assert json.loads(outcome.read_text())["state"] == "complete"
    # The trial killed mid-run ran again on a live worker, from its checkpoint or from the start.
    again = logs[f"trial-{killed:04d}.log"]
    assert starts[f"trial-{killed:04d}.log"] == 2, again
    assert "resuming at update" in again or "starting over in" in again, again
    assert sorted(starts.values()) == [1, 1, 1, 2], starts


# -- the pruner ----------------------------------------------------------------------------------

def test_the_pruner_stops_a_trial_whose_learning_rate_blows_it_up(tmp_path, text_file):
    """Seed 10 asks for eta 0.05 first, then 5, which sends the validation loss to several
    times the good trial's (about 13 against 2.7 nats per character here); the median pruner
    stops it at its first report."""
    out = tmp_path / "sweep"
    proc = charrnn_cmd("sweep", "--out", out, "--set", f"data={text_file}", "--set", "hidden=12",
                       "--set", "gradcheck=false", "--set", "val-every=150", "--param",
                       "eta=0.05,5", "--seed", 10, "--trials", 2, "--workers", 1,
                       # long enough that the pruner's word reaches it before its end
                       "--iterations", 6000, "--prune-after", 1,
                       cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    by_eta = {t.params["eta"]: t for t in trials_of(out)}
    assert by_eta[0.05].state.name == "COMPLETE" and by_eta[0.05].number == 0
    bad = by_eta[5]
    assert bad.state.name == "PRUNED", bad
    assert bad.user_attrs["detail"] == "pruned at update 150"
    assert list(bad.intermediate_values) == [150]
    assert bad.intermediate_values[150] > 3 * by_eta[0.05].value
    assert re.search(r"^trial 1 pruned \(pruned at update 150\)", proc.stdout, re.M)
    run_dir = Path(bad.user_attrs["run_dir"])
    config = json.loads((run_dir / "config.json").read_text())
    rows = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    # Stopped before its budget: how far it got depends on how soon its worker saw the pruner's
    # word (a loaded machine delays that), not on anything this test may assume.
    assert int(rows[-1].split(",")[0]) < config["iterations"], rows[-1]


# -- a scheduler and a worker started on their own ----------------------------------------------

def _trial_started(sweep_dir: Path, number: int) -> bool:
    """Whether trial ``number``'s run has made its run directory: its config.json, written
    before training, is there (the trial's log is written through a buffer, so it may lag)."""
    return (sweep_dir / "trials" / f"trial-{number:04d}" / "config.json").is_file()


def test_scheduler_and_worker_processes(tmp_path, text_file):
    """A real `dask scheduler` and `dask worker`, started on their own. The sweep is interrupted
    while the worker trains its second trial: that trial stops and saves, although the cluster
    outlives the sweep, and the same command then resumes it and finishes."""
    dask = str(Path(sys.executable).with_name("dask"))
    info = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    scheduler = subprocess.Popen([dask, "scheduler", "--scheduler-file", str(info), "--port", "0",
                                  "--no-dashboard"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        worker = subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                   "--no-dashboard"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
        out = tmp_path / "sweep"
        argv = sweep_argv(out, text_file, "--trials", 2, "--iterations", 8000,
                          "--scheduler", address)
        proc = start(argv, tmp_path)
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("trial "):  # the first is done; the worker starts the second
                break
        # Ctrl-C once the second trial has made its run directory, so that
        # the same command later finds that trial started: it resumes or starts it over.
        deadline = time.monotonic() + 240  # only to fail a hung sweep
        while proc.poll() is None and time.monotonic() < deadline and \
                not _trial_started(out, 1):
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)
        output = "".join(lines) + proc.communicate(timeout=120)[0]
        assert proc.returncode == 130 and f"sweep: 2 trials on {address}" in output, output
        second = next(t for t in trials_of(out) if t.state.name == "RUNNING")
        run_dir = Path(second.user_attrs["run_dir"])
        if (run_dir / "latest.npz").is_file():  # it stopped with Ctrl-C and saved, mid-run
            assert load_checkpoint(str(run_dir / "latest.npz")).meta["update"] < 8000
        still = [p for p in psutil.process_iter(["cmdline"])
                 if str(run_dir) in " ".join(p.info["cmdline"] or [])]
        assert not still, "the trial went on training after the sweep stopped"

        again = charrnn_cmd(*argv, cwd=tmp_path, timeout=240)
        assert again.returncode == 0, again.stdout + again.stderr
        assert states(trials_of(out)) == ["COMPLETE", "COMPLETE"]
        rerun = (out / "logs" / f"trial-{max(t.number for t in trials_of(out)):04d}.log")
        assert re.search(r"resuming at update|starting over in", rerun.read_text())
        for t in trials_of(out):
            if t.state.name == "COMPLETE":
                assert (Path(t.user_attrs["run_dir"]) / "report.md").is_file()
    finally:
        for p in (worker, scheduler):
            if p is not None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()


# -- bad input: one line each, nothing written ---------------------------------------------------

BAD = [
    (["--param", "eta=1e-3:"], "--param eta=1e-3:"),
    (["--param", "eta"], "write --param NAME=A,B,C"),
    (["--param", "dropout=log:0:0.5"], "a log range needs LOW > 0"),
    (["--param", "etta=1:2"], "charrnn run has no option --etta"),
    (["--param", "eta=1:2", "--set", "hiden=3"], "charrnn run has no option --hiden"),
    (["--param", "eta=1:2", "--set", "out=x"], "chosen by the sweep"),
    (["--param", "val-frac=0.1,0.2"], "fix it with --set"),
    (["--param", "eta=1:2", "--set", "val-frac=0"], "leaves no validation text"),
    (["--set", "eta=0.1"], "nothing to search"),
    (["--param", "eta=1:2", "--iterations", "0"], "--iterations"),
    (["--param", "eta=1:2", "--storage", "nosuchdb://x"], "cannot open the study's storage"),
    (["--param", "eta=1:2", "--scheduler", "tcp://127.0.0.1:9", "--connect-timeout", "1"],
     "cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 1 s"),
    (["--param", "eta=1:2", "--iterations", "10", "--time-limit", "inf"], "not a finite number"),
    (["--param", "eta=1:2", "--connect-timeout", "nan"], "not a finite number"),
    (["--param", "eta=1:2", "--seed", "100000000000000000000000"], "--seed"),
    (["--param", "seed=0:100000000000000000000000"], "a whole-number range stays within"),
    (["--param", "eta=1:2", "--set", "data=nowhere.txt"], "nowhere.txt does not exist"),
    (["--space", "/dev/zero"], "is not a regular file"),
]


@pytest.mark.parametrize("args, expected", BAD, ids=[e for _, e in BAD])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, expected):
    out = tmp_path / "sweep"
    budget = [] if "--iterations" in args else ["--iterations", "10"]
    proc = charrnn_cmd("sweep", "--out", out, *budget, *args, cwd=tmp_path)
    assert_one_line_error(proc, expected)
    assert not out.exists()


def test_a_space_file_that_is_not_text_is_refused(tmp_path):
    space = tmp_path / "space.bin"
    space.write_bytes(b"\x00\x01\xff\xfe binary")
    proc = charrnn_cmd("sweep", "--out", tmp_path / "s", "--space", space, "--iterations", 10,
                       cwd=tmp_path)
    assert_one_line_error(proc, "is not UTF-8 text")
    assert not (tmp_path / "s").exists()


def test_a_sweep_without_a_budget_is_refused(tmp_path):
    proc = charrnn_cmd("sweep", "--out", tmp_path / "s", "--param", "eta=1:2", cwd=tmp_path)
    assert_one_line_error(proc, "each trial needs a budget")


def test_without_the_extra_the_line_says_what_to_install(tmp_path):
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    (blocker / "optuna.py").write_text("raise ModuleNotFoundError(\"No module named 'optuna'\", "
                                       "name='optuna')\n")
    proc = charrnn_cmd("sweep", "--out", tmp_path / "s", "--param", "eta=1:2",
                       "--iterations", 10, cwd=tmp_path, env={"PYTHONPATH": str(blocker)})
    assert_one_line_error(proc, "needs Optuna and Dask", "pip install 'charrnn-kit[sweep]'")


def test_the_sweep_command_comes_from_an_entry_point():
    from importlib import metadata

    points = {ep.name: ep.value for ep in metadata.entry_points(group="charrnn")}
    assert points["sweep"] == "charrnn.plugins.sweep"


def test_a_second_sweep_on_the_same_directory_is_refused(tmp_path, text_file):
    """One sweep writes a sweep directory: another one started on it meanwhile (here the lock is
    held by this process, as a running sweep holds it) is refused in one line."""
    from charrnn.dirlock import DirectoryLock

    out = tmp_path / "sweep"
    out.mkdir()
    with DirectoryLock(str(out), "sweep directory") as held:
        held.claim()
        proc = charrnn_cmd(*sweep_argv(out, text_file, "--trials", 1, "--workers", 1,
                                       "--iterations", 10), cwd=tmp_path)
    assert_one_line_error(proc, f"sweep directory {out} is in use by another charrnn process "
                                f"(process {os.getpid()}")
    assert not (out / "sweep.json").exists() and not (out / "trials").exists()


@pytest.mark.parametrize("content, expected", [('{"fixed": 3', "cannot be read"),
                                               ("[1, 2]", "is not what charrnn sweep writes")])
def test_show_refuses_a_damaged_sweep_json(tmp_path, content, expected):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "sweep.json").write_text(content, encoding="utf-8")
    proc = charrnn_cmd("sweep", "--show", tmp_path / "s", cwd=tmp_path)
    assert_one_line_error(proc, expected, "damaged or was edited")
