"""The documentation works as written.

- Every command and option of the CLI appears in the generated command-line reference, rendered
  by mkdocs-click from ``docs/reference/cli.md`` as the site build renders it.
- Every option of every command has help text.
- Every command in a shell block of the README and the docs pages runs as written in a fresh
  virtual environment made by the README's own install command. The commands are matched
  against a checked list (:data:`COMMANDS`), so a command added to the docs fails this test
  until someone decides how it is exercised. Training runs are started as written and stopped
  with Ctrl-C once they train, as a user would stop them; their checkpoints then serve the
  commands after them (``--resume``, ``sample``, ``report``).

The site builds with ``mkdocs build --strict`` from the files git tracks, as a fresh clone has
them: every image and file a page links is in the repository (``.ci/run`` builds it again and
fails on any warning).
"""
from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# -- the commands the docs show ----------------------------------------------------------------

_FENCE = re.compile(r"^```(sh|console)[^\n]*\n(.*?)^```", re.M | re.S)
_COMMENT = re.compile(r"\s+#\s.*$")


def pages() -> List[Path]:
    """The README, then every page of the site in the order of its navigation."""
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]

    def walk(items) -> Iterator[str]:
        for item in items:
            for value in (item.values() if isinstance(item, dict) else [item]):
                yield from (walk(value) if isinstance(value, list) else [value])

    return [ROOT / "README.md"] + [DOCS / page for page in walk(nav)]


def shell_commands(page: Path) -> List[str]:
    """The commands of a page's ``sh`` blocks (every line) and ``console`` blocks (lines after
    a ``$`` prompt), with continuation lines joined and trailing comments dropped."""
    commands = []
    for kind, body in _FENCE.findall(page.read_text(encoding="utf-8")):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.strip()
            if kind == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            if not line or line.startswith("#"):
                continue
            commands.append(" ".join(_COMMENT.sub("", line).split()))
    return commands


#: How each documented command is exercised:
#: ``run``: runs to its end, exit status 0;
#: ``train``: a training run, started as written and stopped with Ctrl-C once it trains;
#: ``install``: the README's install command, run once as written (its ``charrnn run`` stopped
#: like a ``train`` command), which makes the environment every other command runs in;
#: ``error``: shown to illustrate a refusal: one ``Error:`` line and a non-zero exit status;
#: any other value: why it is not run here.
INSTALL, RUN, TRAIN, ERROR = "install", "run", "train", "error"
#: The plugin guides' commands: they install the packages under examples/ and use them.
#: tests/test_third_party.py installs each example with pip, for real, and runs the same
#: commands (plugins, run, sample, conformance) through
#: their entry points; doing it all again here would double the suite's longest test.
EXAMPLE = "tests/test_third_party.py installs this example with pip and runs its commands"
#: Why the sweep commands are not run here: this test's fresh venv has the plain install only,
#: and sweeps cost CI time.
SWEEP = "tests/test_sweep.py runs sweeps on real Dask clusters"
SWEEP_RUN_DIR = "needs a sweep's trial directory; tests/test_sweep.py checks that a trial is an " \
    "ordinary run directory"
DASK_SERVER = "starts a long-lived Dask server"
SWEEP_EXTRA = "installs the sweep extra, which tests/test_sweep.py needs and has"
#: The metric sinks need their extras, which this test's plain install leaves out.
SINK = "needs a metric sink's extra; tests/test_metric_sinks.py trains with it and reads " \
    "what it wrote back with the tool's own reader"
SINK_VIEWER = "starts a long-lived viewer (TensorBoard's or MLflow's web server)"
COMMANDS: Dict[str, str] = {
    "python3 -m venv .venv && . .venv/bin/activate && pip install . && charrnn run": INSTALL,
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' "
    "&& python -m pytest": "the first tier of the tests, which .ci/run runs",
    "python -m pytest": "the first tier of the tests, which .ci/run runs",
    "python -m pytest -n auto --dist loadfile": "the first tier of the tests, which .ci/run runs",
    "python -m pytest -m e2e -n auto --dist loadfile": "it is the command that runs this test",
    "python benchmarks/cpu_hog.py 2 --repeat 3 -- python -m pytest": "the tests under load",
    "python benchmarks/cpu_hog.py 2 --repeat 3 -- bash .ci/run": "CI under load",
    "charrnn run --data book.txt --iterations 300000 --target-loss 40 --out runs/book": TRAIN,
    "charrnn run --resume runs/book --iterations 500000": TRAIN,
    "charrnn run --data book.txt --val-frac 0.1": TRAIN,
    'charrnn sample --checkpoint runs/book --length 1000 --temperature 0.8 --prime "CHAPTER "': RUN,
    "charrnn gradcheck --hidden 25 --step 1e-5": RUN,
    "charrnn gradcheck --hidden 25 --step 1e-5 --entries 0": RUN,
    "charrnn gradcheck --model lstm --layers 2 --batch-size 3": RUN,
    "charrnn report runs/book": RUN,
    "charrnn plugins": RUN,
    "charrnn conformance --backend numpy": RUN,
    "charrnn run --help": RUN,
    "charrnn run --preset quick --data tinyshakespeare.txt": TRAIN,
    "charrnn run --preset quick --data book.txt --time-limit 1800": TRAIN,
    "python benchmarks/bench_numpy.py": "a benchmark of several minutes",
    "python benchmarks/bench_numpy.py --data tinyshakespeare.txt": "a benchmark of several minutes",
    "python benchmarks/bench_seed.py --updates 100000 --repeats 2": "a benchmark of several minutes",
    "charrnn run --out runs/first --iterations 20000": TRAIN,
    "charrnn sample --checkpoint runs/first --length 500": RUN,
    "charrnn sample --checkpoint runs/first --length 500 --temperature 0.7 --seed 3": RUN,
    'charrnn sample --checkpoint runs/first/latest.npz --prime "The " --top-k 5': RUN,
    "charrnn run --resume runs/first --iterations 40000": TRAIN,
    "charrnn run --data book.txt --out runs/book": TRAIN,
    "charrnn run --data book.txt --out runs/novel": TRAIN,
    "charrnn run --data book.txt --target-loss 40 --iterations 1000000 --out runs/below-40": TRAIN,
    "charrnn run --data book.txt --model lstm --layers 2 --hidden 256 --batch-size 32 "
    "--seq-length 64 --optimizer adam --dropout 0.1 --dtype float32 --val-frac 0.1 "
    "--time-limit 600 --out runs/book-lstm": TRAIN,
    "charrnn run --resume runs/book-lstm --time-limit 1200": TRAIN,
    "charrnn run --data book.txt": TRAIN,
    "charrnn run --backend cupy --model lstm --layers 2 --hidden 512 --batch-size 64 "
    "--seq-length 128 --optimizer adam --dtype float32 --data book.txt --val-frac 0.1 "
    "--out runs/gpu": "needs an NVIDIA GPU",
    "charrnn sample --checkpoint runs/gpu --backend numpy --length 500":
        "samples the GPU run above",
    "bash benchmarks/gpu_check.sh": "needs an NVIDIA GPU",
    "pip install '.[tensorboard]'": SINK,
    "charrnn run --tensorboard --out runs/tb": SINK,
    "tensorboard --logdir runs": SINK_VIEWER,
    "pip install '.[mlflow]'": SINK,
    "charrnn run --mlflow --out runs/ml": SINK,
    "mlflow ui --backend-store-uri mlruns": SINK_VIEWER,
    # docs/troubleshooting.md
    "charrnn --no-plugins run --data book.txt": TRAIN,
    "CHARRNN_DISABLE_PLUGINS=1 charrnn run --data book.txt": TRAIN,
    # docs/plugins/callback.md
    "pip install -e examples/charrnn-jsonl-logger": EXAMPLE,
    "charrnn run --help | grep -A1 jsonl": EXAMPLE,
    "charrnn run --iterations 300 --jsonl-every 100 --out runs/demo --quiet": EXAMPLE,
    "cat runs/demo/metrics.jsonl": EXAMPLE,
    "pip install examples/charrnn-broken-plugin": EXAMPLE,
    # docs/plugins/backend.md
    "pip install -e examples/charrnn-checked-backend": EXAMPLE,
    "charrnn run --backend checked --iterations 2000 --out runs/checked --quiet": EXAMPLE,
    "charrnn conformance --backend checked": EXAMPLE,
    "charrnn conformance --backend reference -- -x -q": EXAMPLE,
    "pytest examples/charrnn-checked-backend": EXAMPLE,
    # docs/plugins/optimizer.md
    "pip install -e examples/charrnn-momentum-optimizer": EXAMPLE,
    "charrnn run --optimizer nesterov --iterations 2000 --out runs/nesterov --quiet": EXAMPLE,
    "charrnn run --resume runs/nesterov --iterations 4000 --quiet": EXAMPLE,
    'charrnn conformance --backend numpy -- -k "momentum or nesterov"': EXAMPLE,
    "pytest examples/charrnn-momentum-optimizer": EXAMPLE,
    # docs/conformance.md
    "charrnn conformance --backend numpy -- -x -k softmax": RUN,
    # docs/plugins/model.md
    "charrnn run --model bigram --layers 2": EXAMPLE,
    "pip install -e examples/charrnn-mgu-cell": EXAMPLE,
    "charrnn run --model mgu --layers 2 --hidden 64 --iterations 2000 --out runs/mgu --quiet":
        EXAMPLE,
    "charrnn conformance --backend numpy -- -k mgu": EXAMPLE,
    "pip install -e examples/charrnn-bigram-model": EXAMPLE,
    "charrnn run --help | grep -A1 -- --model": EXAMPLE,
    "charrnn run --model bigram --iterations 2000 --out runs/bigram --quiet": EXAMPLE,
    "charrnn sample --checkpoint runs/bigram --length 200": EXAMPLE,
    "charrnn gradcheck --model bigram": EXAMPLE,
    "charrnn conformance --backend numpy -- -k bigram": EXAMPLE,
    # README.md and docs/sweep.md
    "charrnn sweep --out sweeps/book --set data=book.txt --param hidden=64,128,256 "
    "--param eta=log:1e-3:3e-1 --iterations 5000 --trials 20": SWEEP,
    "pip install '.[sweep]'": SWEEP_EXTRA,
    "charrnn sweep --out sweeps/first --set data=book.txt --param hidden=32,64 "
    "--param eta=log:1e-3:3e-1 --trials 8 --workers 2 --iterations 2000": SWEEP,
    "charrnn sweep --space space.txt --time-limit 120 --trials 40 --out sweeps/gru": SWEEP,
    "charrnn sweep --space space.txt --time-limit 120 --trials 60 --out sweeps/gru": SWEEP,
    "charrnn sweep --show sweeps/first": SWEEP,
    "charrnn sample --checkpoint sweeps/first/trials/trial-0007 --length 500": SWEEP_RUN_DIR,
    "charrnn report sweeps/first/trials/trial-0007": SWEEP_RUN_DIR,
    "charrnn run --resume sweeps/first/trials/trial-0007 --iterations 20000": SWEEP_RUN_DIR,
    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1 dask scheduler": DASK_SERVER,
    "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 dask worker tcp://head:8786 "
    "--nthreads 1 --nworkers $(nproc)": DASK_SERVER,
    "charrnn sweep --scheduler tcp://head:8786 --space space.txt --time-limit 600 --trials 200 "
    "--out /shared/sweeps/gru": SWEEP,
    "charrnn sweep --scheduler tcp://head:8786 --storage postgresql://sweeps@dbhost/sweeps "
    "--space space.txt --time-limit 600 --trials 200 --out /shared/sweeps/gru": SWEEP,
}


def test_every_documented_command_is_in_the_checked_list():
    documented = {c for page in pages() for c in shell_commands(page)}
    assert documented, "no shell blocks found: the parser or the docs changed"
    unlisted = sorted(documented - set(COMMANDS))
    stale = sorted(set(COMMANDS) - documented)
    assert not unlisted, "documented commands not in COMMANDS (decide how each is exercised):\n" \
        + "\n".join(unlisted)
    assert not stale, "COMMANDS lists commands no page shows any more:\n" + "\n".join(stale)


# -- the command-line reference ----------------------------------------------------------------

def _commands(group: click.Group) -> Iterator[Tuple[str, click.Command]]:
    ctx = click.Context(group, info_name="charrnn")
    yield "charrnn", group
    for name in group.list_commands(ctx):
        yield f"charrnn {name}", group.get_command(ctx, name)


@pytest.fixture(scope="module")
def assembled_cli() -> click.Group:
    from charrnn.cli_reference import cli

    return cli


@pytest.fixture(scope="module")
def cli_reference_html() -> str:
    """docs/reference/cli.md rendered with the mkdocs-click extension, as the site renders it."""
    import markdown

    text = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    return markdown.markdown(text, extensions=["mkdocs-click", "attr_list"])


def _sections(html: str) -> Dict[str, str]:
    """The rendered reference cut at each command's heading."""
    parts = re.split(r"<h[2-6][^>]*>([\w-]+)</h[2-6]>", html)
    return {("" if parts[i] == "charrnn" else "charrnn ") + parts[i]: parts[i + 1]
            for i in range(1, len(parts) - 1, 2)}


def test_the_cli_reference_shows_every_command_and_option(assembled_cli, cli_reference_html):
    sections = _sections(cli_reference_html)
    expected = dict(_commands(assembled_cli))
    assert set(sections) == set(expected), (sorted(sections), sorted(expected))
    for title, command in expected.items():
        ctx = click.Context(command, info_name=title)
        for param in command.get_params(ctx):
            for name in param.opts + param.secondary_opts:
                if param.param_type_name == "argument":
                    name = param.human_readable_name
                assert name in sections[title], f"{title}: {name} is missing from the reference"


def test_the_reference_includes_the_options_plugins_add(assembled_cli, cli_reference_html):
    # Options of charrnn's own callback plugins, which join `run` only when the registry loads.
    run = _sections(cli_reference_html)["charrnn run"]
    for option in ("--sample-every", "--plot-every", "--gradcheck-step", "--val-every",
                   "--report-passage-length", "--lr-schedule", "--checkpoint-every"):
        assert option in run, option


def test_every_option_has_help_text(assembled_cli):
    missing = []
    for title, command in _commands(assembled_cli):
        assert (command.help or "").strip(), f"{title} has no help"
        ctx = click.Context(command, info_name=title)
        for param in command.get_params(ctx):
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"{title} {'/'.join(param.opts)}")
    assert not missing, "options without help text: " + ", ".join(missing)


# -- the commands, run as written -----------------------------------------------------------

def _book(length: int) -> str:
    """A stand-in for the user's own text: the embedded corpus, which every Python ships."""
    from charrnn.data import default_text

    text = default_text()
    return text[:length]


def _checkout_copy(dest: Path) -> Path:
    """The files git tracks, as a fresh clone has them (no build folders, no egg-info)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    for name in listed.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)
    return dest


def _default_sigint() -> None:
    # A test run in the background inherits SIGINT ignored; the child must act on Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _trains(text: str) -> bool:
    """Whether a run's output shows it is past its start-up: a resumed run once it names its
    run directory, a new one once its first sample is out (after the gradient check, just
    before the first update); the CPU time it spends from then on is spent training."""
    if "\nrun directory: " not in text:
        return False
    return "\nresuming at update " in text or "--- sample at update 0 " in text


#: CPU time a training run spends after it starts training before it gets its Ctrl-C. CPU time,
#: not wall-clock time: a loaded machine makes the wait longer instead of cutting the training
#: short. The slowest documented update (the LSTM of the models page) takes a fraction of it.
TRAINING_CPU_SECONDS = 1.0


def _cpu_seconds(pid: int) -> float:
    """CPU time used so far by the process ``pid`` and its descendants."""
    import psutil  # the sweep extra's distributed brings it; the test extra has that extra

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _saved_an_update(out: str) -> bool:
    """Whether an interrupted run's output shows that it stopped after training: it names the
    command that continues it (a run interrupted before its first update has nothing to save)."""
    return "continue with: charrnn run --resume" in out


def _execute(command: str, mode: str, cwd: Path, env: Dict[str, str]) -> Tuple[int, str]:
    """Run ``command`` with bash in ``cwd``. A training run is stopped with Ctrl-C once it has
    spent :data:`TRAINING_CPU_SECONDS` of CPU time training, so that it has done some updates
    and saves them; should the Ctrl-C still land before its first update, the command is run
    again, as a user would, with twice the wait. Returns the exit status and the output."""
    training = mode in (TRAIN, INSTALL)
    wait = TRAINING_CPU_SECONDS
    for _ in range(4):
        code, out = _execute_once(command, mode, cwd, env, wait)
        if not training or code != 130 or _saved_an_update(out):
            return code, out
        wait *= 2
    return code, out


def _execute_once(command: str, mode: str, cwd: Path, env: Dict[str, str],
                  wait: float) -> Tuple[int, str]:
    log = cwd.parent / "command.log"
    with open(log, "w", encoding="utf-8") as sink:
        proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_default_sigint)
        # Generous deadlines, only to fail a hung command; nothing waits for them to pass.
        limit = time.monotonic() + (900 if mode == INSTALL else 300)
        cpu_at_start = None
        while proc.poll() is None and time.monotonic() < limit:
            time.sleep(0.1)
            if mode not in (TRAIN, INSTALL) or cpu_at_start == math.inf:
                continue
            if cpu_at_start is None:
                if _trains(log.read_text(encoding="utf-8", errors="replace")):
                    cpu_at_start = _cpu_seconds(proc.pid)
            elif _cpu_seconds(proc.pid) - cpu_at_start >= wait:
                os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a user stops a run
                cpu_at_start = math.inf
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out = log.read_text(encoding="utf-8", errors="replace")
    if proc.returncode == -signal.SIGKILL:
        pytest.fail(f"{command!r} did not end in time; it printed:\n{out[-3000:]}")
    return proc.returncode, out


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    work = _checkout_copy(tmp_path_factory.mktemp("checkout"))
    (work / "book.txt").write_text(_book(300_000), encoding="utf-8")
    (work / "tinyshakespeare.txt").write_text(_book(200_000)[::-1], encoding="utf-8")
    return work


@pytest.mark.e2e
def test_the_docs_commands_run_as_written_after_the_readme_install(checkout):
    install = next(c for c, mode in COMMANDS.items() if mode == INSTALL)
    assert install in shell_commands(ROOT / "README.md")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    code, out = _execute(install, INSTALL, checkout, env)
    assert "Successfully installed" in out and "charrnn-kit" in out, out[-3000:]
    assert code == 130 and "continue with: charrnn run --resume" in out, (code, out[-3000:])
    venv = checkout / ".venv"
    # What `. .venv/bin/activate` leaves for the commands typed after it in the same shell.
    env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")

    failures, timings = [], []
    done = {install}
    for page in pages():
        shutil.rmtree(checkout / "runs", ignore_errors=True)  # each page starts afresh
        for command in shell_commands(page):
            mode = COMMANDS[command]
            if mode not in (RUN, TRAIN, ERROR) or (command in done and mode == RUN and
                                                   not command.startswith("charrnn sample")):
                continue
            if command in done and mode == TRAIN and "--out" not in command:
                continue  # the same run again, and nothing after it on this page needs it
            done.add(command)
            began = time.monotonic()
            code, out = _execute(command, mode, checkout, env)
            timings.append(f"{time.monotonic() - began:6.1f} s  {page.name}: {command}")
            if mode == ERROR:
                ok = code not in (0, 130) and out.startswith("Error: ") and out.count("\n") == 1
            else:
                ok = code == 0 if mode == RUN else code in (0, 130)
            if not ok or "Traceback" in out:
                failures.append(f"{page.name}: {command} -> exit {code}\n{out[-1500:]}")
    print("\n".join(timings))
    assert not failures, "\n\n".join(failures)


@pytest.mark.e2e
def test_the_site_builds_strictly_from_a_fresh_clone(tmp_path):
    """Nothing generated by hand first: a figure kept out of git by .gitignore, or a page that
    links a file only a local build made, fails here."""
    work = _checkout_copy(tmp_path / "clone")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=work, env=env, capture_output=True,
                          text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert "WARNING" not in out, out[-5000:]
    assert (tmp_path / "site" / "assets" / "assignment" / "loss.png").is_file()
