"""The example plugins under ``examples/`` behave as their guides say, in this process.

Each test puts the examples it needs on the path with their entry points
(``with_examples``, see ``helpers.examples_on_path``): the registry finds them through
``importlib.metadata``, as it finds any installed plugin, and the launcher runs in-process.
Installing them with pip, for real, and running them as separate processes is
``tests/test_third_party.py``'s job, in the end-to-end tier.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List

import numpy
import pytest
from helpers import assert_one_line_error, run_in_process

JSONL = "charrnn-jsonl-logger"
BROKEN = "charrnn-broken-plugin"
BIGRAM = "charrnn-bigram-model"
MOMENTUM = "charrnn-momentum-optimizer"
CHECKED = "charrnn-checked-backend"
MGU = "charrnn-mgu-cell"
BROKEN_MESSAGE = "RuntimeError: this example plugin is broken on purpose"
RECORD_KEYS = {"update", "epoch", "smooth_loss", "loss", "updates_per_second", "timestamp"}
TEXT = ("First Citizen: Before we proceed any further, hear me speak.\n"
        "All: Speak, speak.\n"
        "First Citizen: You are all resolved rather to die than to famish?\n") * 8
#: The message the bigram model refuses ``--layers`` other than 1 with.
BIGRAM_REFUSAL = "the bigram model has no layers"
#: Options of the short runs below: a small model, nothing that only costs time.
SHORT_RUN = ("--hidden", 16, "--seq-length", 10, "--no-gradcheck", "--no-plot", "--quiet")


def charrnn(*args: object, cwd: Path):
    return run_in_process(*map(str, args), cwd=cwd)


def check(proc, what: str) -> None:
    assert proc.returncode == 0, f"{what} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture
def data_file(tmp_path) -> Path:
    path = tmp_path / "small.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def read_metrics(run_dir: Path) -> List[dict]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def check_metrics(records: List[dict], updates: List[int], val: bool) -> None:
    assert [r["update"] for r in records] == updates + [updates[-1]]
    for r in records[:-1]:
        assert "event" not in r
    assert records[-1]["event"] == "end"
    for r in records:
        assert RECORD_KEYS <= set(r), r
        assert isinstance(r["smooth_loss"], float) and r["smooth_loss"] > 0
        assert isinstance(r["loss"], float) and r["loss"] > 0
        assert r["updates_per_second"] > 0
        assert r["epoch"] >= 0
        assert ("val_loss" in r) == val, r
    assert [r["timestamp"] for r in records] == sorted(r["timestamp"] for r in records)


def model_choices(help_text: str) -> List[str]:
    """The choices ``charrnn run --help`` shows for ``--model``."""
    match = re.search(r"--model \[([^\]]*)\]", help_text)
    assert match, help_text
    return match.group(1).split("|")


def read_column(run_dir: Path, column: str) -> List[float]:
    lines = (run_dir / "metrics.csv").read_text(encoding="utf-8").splitlines()
    index = lines[0].split(",").index(column)
    return [float(line.split(",")[index]) for line in lines[1:]]


def checkpoint_arrays(path: Path) -> Dict[str, numpy.ndarray]:
    with numpy.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files if name != "meta"}


# -- the jsonl logger: a callback with an option -------------------------------------------------

def test_run_help_shows_the_option_only_with_the_plugin(with_examples, tmp_path):
    proc = charrnn("run", "--help", cwd=tmp_path)
    check(proc, "charrnn run --help")
    assert "--jsonl-every" not in proc.stdout
    with_examples(JSONL)
    proc = charrnn("run", "--help", cwd=tmp_path)
    check(proc, "charrnn run --help")
    assert "--jsonl-every" in proc.stdout


def test_run_writes_metrics_jsonl(with_examples, data_file, tmp_path):
    with_examples(JSONL)
    out = tmp_path / "run"
    proc = charrnn("run", "--iterations", 300, "--jsonl-every", 100, "--hidden", 16,
                   "--data", data_file, "--out", out, "--val-frac", 0.2, "--val-every", 100,
                   "--quiet", "--no-gradcheck", cwd=tmp_path)
    check(proc, "charrnn run")
    check_metrics(read_metrics(out), [100, 200, 300], val=True)
    # Its own section of the report, between the loss plot's and the samples' (order 25).
    report = (out / "report.md").read_text(encoding="utf-8")
    titles = re.findall(r"^## (.*)$", report, flags=re.M)
    assert titles.index("Metrics as JSON lines") == titles.index("Smooth loss") + 1
    assert titles.index("Samples during training") == titles.index("Smooth loss") + 2
    lines = len((out / "metrics.jsonl").read_text(encoding="utf-8").splitlines())
    assert f"{lines:,} lines in [metrics.jsonl](metrics.jsonl)" in report


def test_jsonl_every_zero_is_one_error_line(with_examples, data_file, tmp_path):
    with_examples(JSONL)
    out = tmp_path / "run"
    proc = charrnn("run", "--iterations", 10, "--jsonl-every", 0, "--data", data_file,
                   "--out", out, "--no-gradcheck", cwd=tmp_path)
    assert_one_line_error(proc, "--jsonl-every")
    assert not out.exists()


# -- a broken plugin beside a working one --------------------------------------------------------

def test_plugins_lists_a_broken_plugin_and_the_rest_still_loads(with_examples, tmp_path):
    with_examples(JSONL, BROKEN)
    proc = charrnn("plugins", "--json", cwd=tmp_path)
    check(proc, "charrnn plugins --json")
    listing = json.loads(proc.stdout)
    rows = [r for r in listing["plugins"] if r["name"] == "jsonl"]
    assert rows == [{"kind": "callback", "name": "jsonl", "distribution": JSONL,
                     "version": "0.1.0", "entry_point": "jsonl"}]
    (failed,) = [f for f in listing["failed"] if f["distribution"] == BROKEN]
    assert failed["entry_point"] == "broken" and failed["error"] == BROKEN_MESSAGE


def test_run_works_with_a_broken_plugin_installed(with_examples, data_file, tmp_path):
    with_examples(BROKEN, JSONL)
    out = tmp_path / "run"
    proc = charrnn("run", "--iterations", 300, "--jsonl-every", 100, "--hidden", 16,
                   "--data", data_file, "--out", out, "--no-gradcheck", cwd=tmp_path)
    check(proc, "charrnn run")
    assert "Traceback" not in proc.stderr
    check_metrics(read_metrics(out), [100, 200, 300], val=False)


# -- the bigram: a model -------------------------------------------------------------------------

def test_run_help_offers_the_bigram_model_only_with_the_plugin(with_examples, tmp_path):
    proc = charrnn("run", "--help", cwd=tmp_path)
    assert "bigram" not in model_choices(proc.stdout)
    with_examples(BIGRAM)
    proc = charrnn("run", "--help", cwd=tmp_path)
    check(proc, "charrnn run --help")
    assert {"bigram", "rnn"} <= set(model_choices(proc.stdout))


@pytest.mark.parametrize("batch", [1, 4])
def test_bigram_trains_reports_and_samples(with_examples, data_file, tmp_path, batch):
    """``--model bigram`` through the whole run: the gradient check (on), training, the report,
    a checkpoint that ``charrnn sample`` loads."""
    with_examples(BIGRAM)
    out = tmp_path / "run"
    proc = charrnn("run", "--model", "bigram", "--batch-size", batch, "--iterations", 600,
                   "--log-every", 100, "--seq-length", 10, "--data", data_file, "--out", out,
                   "--quiet", cwd=tmp_path)
    check(proc, "charrnn run --model bigram")
    assert json.loads((out / "config.json").read_text())["model"] == "bigram"

    losses = read_column(out, "smooth_loss")
    assert len(losses) == 6, losses
    assert all(b < a for a, b in zip(losses, losses[1:])), f"smooth loss does not fall: {losses}"
    assert losses[-1] < 0.9 * losses[0], losses

    report = (out / "report.md").read_text(encoding="utf-8")
    assert re.search(r"^\| model \| bigram \(\d+x\d+ table; [\d,]+ parameters\) \|$", report,
                     flags=re.M), report
    gradcheck = report.split("## Gradient check", 1)[1].split("\n## ", 1)[0]
    assert "**passed**" in gradcheck and "| table |" in gradcheck, gradcheck

    # Greedy sampling follows the table's likeliest successor of each character: after training,
    # each step is a pair of characters that occurs in the text.
    proc = charrnn("sample", "--checkpoint", out, "--length", 120, "--top-k", 1, "--prime", "F",
                   cwd=tmp_path)
    check(proc, "charrnn sample")
    assert proc.stdout.endswith("\n")
    sample = proc.stdout[:-1]
    assert len(sample) == 1 + 120 and sample.startswith("F")
    unseen = {sample[i:i + 2] for i in range(len(sample) - 1)} - \
        {TEXT[i:i + 2] for i in range(len(TEXT) - 1)}
    assert not unseen, f"pairs the text never has: {sorted(unseen)} in {sample!r}"


def test_bigram_refuses_layers_with_one_error_line(with_examples, data_file, tmp_path):
    with_examples(BIGRAM)
    out = tmp_path / "run"
    proc = charrnn("run", "--model", "bigram", "--layers", 2, "--iterations", 10,
                   "--data", data_file, "--out", out, "--quiet", cwd=tmp_path)
    assert_one_line_error(proc, BIGRAM_REFUSAL, "--layers")
    assert not out.exists()


# -- momentum and a checked backend: an optimizer and a backend, two from each entry point -------

@pytest.mark.parametrize("optimizer", ["momentum", "nesterov"])
def test_momentum_trains_and_resumes_exactly(with_examples, data_file, tmp_path, optimizer):
    """The loss falls, and a run stopped halfway and resumed ends exactly where an
    uninterrupted one does: the velocity goes through the checkpoint."""
    with_examples(MOMENTUM)
    common = ("--optimizer", optimizer, "--eta", 0.01, "--data", data_file, *SHORT_RUN)
    straight = tmp_path / "straight"
    proc = charrnn("run", *common, "--iterations", 60, "--log-every", 1, "--out", straight,
                   cwd=tmp_path)
    check(proc, f"charrnn run --optimizer {optimizer}")
    assert f"optimizer {optimizer} (eta 0.01, clip 5, momentum 0.9)" in proc.stdout, proc.stdout
    losses = read_column(straight, "loss")
    assert len(losses) == 60, losses
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.93 * first, (first, last)

    halves = tmp_path / "halves"
    proc = charrnn("run", *common, "--iterations", 30, "--out", halves, cwd=tmp_path)
    check(proc, f"charrnn run --optimizer {optimizer} --iterations 30")
    proc = charrnn("run", "--resume", halves, "--iterations", 60, "--quiet", "--no-plot",
                   cwd=tmp_path)
    check(proc, "charrnn run --resume")

    expected = checkpoint_arrays(straight / "latest.npz")
    resumed = checkpoint_arrays(halves / "latest.npz")
    velocity = sorted(k for k in expected if k.startswith("optim.velocity:"))
    params = sorted(k for k in expected if k.startswith("param."))
    assert params and [k.replace("optim.velocity:", "param.") for k in velocity] == params
    assert sorted(resumed) == sorted(expected)
    for name, array in expected.items():
        assert (resumed[name] == array).all(), f"{name} differs after the resume"


def test_checked_backend_trains_as_the_reference_does(with_examples, data_file, tmp_path):
    """Both backends of the one entry point train; checking every operation changes nothing."""
    with_examples(CHECKED)
    runs = {}
    for backend in ("reference", "checked"):
        out = tmp_path / backend
        proc = charrnn("run", "--backend", backend, "--data", data_file, *SHORT_RUN,
                       "--iterations", 40, "--log-every", 1, "--out", out, cwd=tmp_path)
        check(proc, f"charrnn run --backend {backend}")
        assert f"backend {backend}: charrnn's reference operations on numpy" in proc.stdout
        runs[backend] = checkpoint_arrays(out / "latest.npz")
        losses = read_column(out, "loss")
        assert len(losses) == 40 and sum(losses[-10:]) < 0.95 * sum(losses[:10]), losses
    assert sorted(runs["checked"]) == sorted(runs["reference"])
    for name, array in runs["reference"].items():
        assert (runs["checked"][name] == array).all(), name


def test_checked_backend_stops_at_the_operation_that_overflows(with_examples, data_file,
                                                               tmp_path):
    """A step of eta * 5 beyond the largest float: the checked backend stops inside the first
    update, in the optimizer's operation, where the core would only see the next loss."""
    with_examples(CHECKED)
    out = tmp_path / "run"
    proc = charrnn("run", "--backend", "checked", "--optimizer", "sgd", "--eta", "1e308",
                   "--data", data_file, *SHORT_RUN, "--iterations", 20, "--out", out,
                   cwd=tmp_path)
    assert_one_line_error(proc, "backend 'checked': sgd.update wrote a non-finite value into "
                          "param", "from finite inputs", "--eta")
    assert proc.returncode == 2
    assert not (out / "latest.npz").exists()


def test_the_examples_leave_the_registry_as_they_found_it(with_examples, tmp_path):
    """What the fixture puts on the path is gone after the test that used it."""
    from charrnn.registry import get_registry

    assert "bigram" not in get_registry().names("model")
    with_examples(BIGRAM, MOMENTUM)
    assert "bigram" in get_registry().names("model")
    assert {"momentum", "nesterov"} <= set(get_registry().names("optimizer"))
