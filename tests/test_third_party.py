"""Third-party plugins installed for real: the distributions under ``examples/``.

A callback (``charrnn-jsonl-logger``), a plugin that fails to import (``charrnn-broken-plugin``),
a model (``charrnn-bigram-model``), an optimizer (``charrnn-momentum-optimizer``, two optimizers
from one entry point) and a backend (``charrnn-checked-backend``, two backends from one entry
point).

Each example is installed with pip, in a subprocess, into its own ``--target`` folder, so the
test environment is never changed and nothing is fetched from the network. The installed
``charrnn`` console script then runs with ``PYTHONPATH`` set to that folder: the plugin is found
through the ``charrnn`` entry point in the installed ``*.dist-info`` metadata, as any installed
plugin is, not registered by hand.

The examples are built offline with ``pip install --no-build-isolation``, which uses the
setuptools of the test environment; the ``test`` extra asks for setuptools >= 70.1, the first
with ``bdist_wheel`` built in.

Examples are copied to a temporary folder before building, so no ``build/`` or ``*.egg-info``
is left in the source tree.

These are the tests about installing: the metadata pip writes, ``charrnn plugins`` and the
conformance suite in real processes, one real run beside a broken plugin. How each example
behaves in training is ``tests/test_examples.py``'s, in this process, in the first tier.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List

import pytest
from helpers import console_script
from test_examples import (BIGRAM, BIGRAM_REFUSAL, BROKEN, BROKEN_MESSAGE, CHECKED, JSONL, MGU, MOMENTUM,
                           TEXT, check_metrics, read_metrics)

#: End-to-end tier (the examples installed with pip, run as real processes): `python -m pytest -m e2e`.
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# -- installing ---------------------------------------------------------------------------------

def _subprocess_env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PIP_NO_INDEX"] = "1"  # nothing may be downloaded
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    assert proc.returncode == 0, f"{what} failed:\n{proc.stdout}\n{proc.stderr}"


def pip_install(example: str, work: Path, *more: str) -> Path:
    """Install ``examples/<example>`` (and the examples named in ``more``, in the same pip
    command, which saves a start of pip each) into ``work/site`` and return that folder."""
    sources = []
    for name in (example, *more):
        src = work / "src" / name
        shutil.copytree(EXAMPLES / name, src,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        sources.append(str(src))
    target = work / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
           "--target", str(target), *sources]
    proc = subprocess.run(cmd, env=_subprocess_env(), capture_output=True, text=True, timeout=180)
    _check(proc, " ".join(cmd))
    assert list(target.glob("*.dist-info")), f"pip left no metadata in {target}"
    return target


@pytest.fixture(scope="module")
def jsonl_site(tmp_path_factory) -> Path:
    return pip_install(JSONL, tmp_path_factory.mktemp("jsonl"))


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory) -> Path:
    return pip_install(BROKEN, tmp_path_factory.mktemp("broken"))


@pytest.fixture(scope="module")
def bigram_site(tmp_path_factory) -> Path:
    """The two model examples, the bigram and the MGU cell, installed together."""
    return pip_install(BIGRAM, tmp_path_factory.mktemp("bigram"), MGU)


@pytest.fixture(scope="module")
def extension_site(tmp_path_factory) -> Path:
    """The optimizer and the backend examples, installed together."""
    return pip_install(MOMENTUM, tmp_path_factory.mktemp("extensions"), CHECKED)


# -- running the launcher -----------------------------------------------------------------------

def charrnn(*args: object, sites: List[Path], cwd: Path) -> subprocess.CompletedProcess:
    env = _subprocess_env(PYTHONPATH=os.pathsep.join(str(s) for s in sites))
    return subprocess.run([console_script(), *map(str, args)], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def run_extra(tmp_path_factory, jsonl_site) -> List[str]:
    """Options every test run passes: ``--no-gradcheck`` where a gradient check plugin adds it."""
    proc = charrnn("run", "--help", sites=[jsonl_site], cwd=tmp_path_factory.mktemp("help"))
    _check(proc, "charrnn run --help")
    return ["--no-gradcheck"] if "--no-gradcheck" in proc.stdout else []


@pytest.fixture
def data_file(tmp_path) -> Path:
    path = tmp_path / "small.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def plugins_json(sites: List[Path], cwd: Path) -> dict:
    proc = charrnn("plugins", "--json", sites=sites, cwd=cwd)
    _check(proc, "charrnn plugins --json")
    return json.loads(proc.stdout)


# -- the jsonl logger ---------------------------------------------------------------------------

def test_pip_installed_real_metadata(jsonl_site):
    (dist_info,) = jsonl_site.glob("charrnn_jsonl_logger-0.1.0.dist-info")
    assert "[charrnn]\njsonl = charrnn_jsonl_logger" in (dist_info / "entry_points.txt").read_text()
    assert (dist_info / "RECORD").exists() and (jsonl_site / "charrnn_jsonl_logger.py").exists()


def test_plugins_lists_the_jsonl_callback(jsonl_site, tmp_path):
    listing = plugins_json([jsonl_site], tmp_path)
    rows = [r for r in listing["plugins"] if r["name"] == "jsonl"]
    assert rows == [{"kind": "callback", "name": "jsonl", "distribution": JSONL,
                     "version": "0.1.0", "entry_point": "jsonl"}]
    assert "jsonl" not in [f["entry_point"] for f in listing["failed"]]

    proc = charrnn("plugins", sites=[jsonl_site], cwd=tmp_path)
    _check(proc, "charrnn plugins")
    assert re.search(r"^  jsonl +charrnn-jsonl-logger 0\.1\.0  \(entry point jsonl\)$",
                     proc.stdout, flags=re.M), proc.stdout


# -- a broken plugin ----------------------------------------------------------------------------

def test_plugins_survives_a_broken_plugin(jsonl_site, broken_site, tmp_path):
    sites = [jsonl_site, broken_site]
    listing = plugins_json(sites, tmp_path)
    names = {(r["kind"], r["name"]) for r in listing["plugins"]}
    assert {("backend", "numpy"), ("optimizer", "adagrad"), ("optimizer", "sgd"),
            ("callback", "sampler"), ("callback", "progress"), ("callback", "jsonl")} <= names
    (failed,) = [f for f in listing["failed"] if f["distribution"] == BROKEN]
    assert failed["entry_point"] == "broken" and failed["version"] == "0.1.0"
    assert failed["error"] == BROKEN_MESSAGE

    proc = charrnn("plugins", sites=sites, cwd=tmp_path)
    _check(proc, "charrnn plugins")
    assert "failed to load:" in proc.stdout
    assert f"{BROKEN} 0.1.0: {BROKEN_MESSAGE}" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_run_works_with_a_broken_plugin_installed(jsonl_site, broken_site, run_extra, data_file,
                                                  tmp_path):
    out = tmp_path / "run"
    proc = charrnn("run", "--iterations", 300, "--jsonl-every", 100, "--hidden", 16,
                   "--data", data_file, "--out", out, *run_extra,
                   sites=[broken_site, jsonl_site], cwd=tmp_path)
    _check(proc, "charrnn run")
    assert "Traceback" not in proc.stderr
    check_metrics(read_metrics(out), [100, 200, 300], val=False)


# -- a third-party model: the bigram ------------------------------------------------------------


def test_bigram_installed_real_metadata(bigram_site):
    (dist_info,) = bigram_site.glob("charrnn_bigram_model-0.1.0.dist-info")
    assert "[charrnn]\nbigram = charrnn_bigram_model" in (dist_info / "entry_points.txt").read_text()
    assert (bigram_site / "charrnn_bigram_model.py").exists()


def test_plugins_lists_the_bigram_model(bigram_site, tmp_path):
    listing = plugins_json([bigram_site], tmp_path)
    rows = [r for r in listing["plugins"] if r["name"] == "bigram"]
    assert rows == [{"kind": "model", "name": "bigram", "distribution": BIGRAM,
                     "version": "0.1.0", "entry_point": "bigram"}]
    assert "bigram" not in [f["entry_point"] for f in listing["failed"]]

    proc = charrnn("plugins", sites=[bigram_site], cwd=tmp_path)
    _check(proc, "charrnn plugins")
    # listed in the models section, between "models:" and the next heading
    models = re.search(r"^models:\n((?:  .*\n)*)", proc.stdout, flags=re.M)
    assert models, proc.stdout
    assert re.search(r"^  bigram +charrnn-bigram-model 0\.1\.0  \(entry point bigram\)$",
                     models.group(1), flags=re.M), proc.stdout


def test_conformance_suite_checks_the_bigram_model(bigram_site, tmp_path):
    """``charrnn conformance`` with the plugin installed runs the bigram's cases, and they pass.

    The suite also builds every model with two layers, which the bigram refuses, as a model may:
    those cases are skipped with the refusal as the reason; every other bigram case passes.
    """
    report = tmp_path / "conformance.xml"
    proc = charrnn("conformance", "--backend", "numpy", "--", "-k", "bigram",
                   f"--junitxml={report}", sites=[bigram_site], cwd=tmp_path)
    assert "charrnn conformance: backend 'numpy'" in proc.stdout, proc.stdout + proc.stderr
    passed, refused, other = [], [], []
    for case in ET.parse(report).iter("testcase"):
        name = case.get("name")
        assert "bigram" in name, name
        outcome = [c for c in case if c.tag in ("failure", "error", "skipped")]
        if not outcome:
            passed.append(name)
        elif BIGRAM_REFUSAL in (outcome[0].get("message") or ""):
            refused.append((name, outcome[0].tag))
        elif outcome[0].tag == "skipped" and "drops no units" in (outcome[0].get("message") or ""):
            assert "dropout" in name, name  # the bigram has no hidden units to drop
        else:
            other.append(f"{name}: {outcome[0].tag}: {outcome[0].get('message')}")
    assert not other, "\n".join(other)
    assert refused and all(tag == "skipped" for _, tag in refused), refused
    for name, _ in refused:
        assert "-2]" in name or "-2-" in name, name
    for test in ("test_loss_and_grads", "test_gradient_check", "test_train_steps",
                 "test_checkpoint_portability", "test_sample_ids"):
        assert any(n.startswith(test + "[") for n in passed), (test, passed)
    assert len(passed) >= 16, passed
    assert proc.returncode == 0, proc.stdout


# -- a third-party cell with its own kernel: the MGU -----------------------------------------------

def test_a_third_party_cell_and_its_kernel_are_checked_by_the_suite(bigram_site, tmp_path):
    """The MGU example adds a model, two operations and a NumPy kernel for them, without
    touching charrnn: the suite runs the kernel against the operations' references (long,
    batched and saturated cases included) and the model through every model case."""
    report = tmp_path / "conformance.xml"
    proc = charrnn("conformance", "--backend", "numpy", "--", "-k", "mgu",
                   f"--junitxml={report}", sites=[bigram_site], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^    mgu\.forward +kernel from mgu \(charrnn-mgu-cell\)$", proc.stdout,
                     flags=re.M), proc.stdout
    passed = {case.get("name") for case in ET.parse(report).iter("testcase")
              if not [c for c in case if c.tag in ("failure", "error", "skipped")]}
    for name in ("test_kernel[mgu.forward-T64-B3-saturated-float32]",
                 "test_kernel[mgu.backward-T64-B3-float64]",
                 "test_gradient_check[mgu-B3-2-dropout]", "test_step_agrees_with_loss[mgu-B3-float64]",
                 "test_train_steps[mgu-float32-adam]",
                 "test_checkpoint_portability[mgu-float64-backend]"):
        assert name in passed, sorted(passed)


def test_the_mgu_cell_trains_samples_and_passes_its_own_tests(bigram_site, data_file, tmp_path):
    out = tmp_path / "mgu"
    proc = charrnn("run", "--model", "mgu", "--layers", 2, "--hidden", 16, "--dropout", 0.1,
                   "--data", data_file, "--iterations", 200, "--out", out, "--quiet",
                   sites=[bigram_site], cwd=tmp_path)
    _check(proc, "charrnn run --model mgu")
    assert "model mgu (2 layers of 16, dropout 0.1" in proc.stdout, proc.stdout
    proc = charrnn("sample", "--checkpoint", out, "--length", 40, sites=[bigram_site],
                   cwd=tmp_path)
    _check(proc, "charrnn sample")
    tests = tmp_path / "own-tests"
    shutil.copytree(EXAMPLES / MGU, tests, ignore=shutil.ignore_patterns("*.egg-info", "build"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:randomly", str(tests / "test_charrnn_mgu_cell.py")],
                          cwd=str(tmp_path), env=_subprocess_env(PYTHONPATH=str(bigram_site)),
                          capture_output=True, text=True, timeout=300)
    _check(proc, "pytest examples/charrnn-mgu-cell")
    assert re.search(r"\d+ passed", proc.stdout), proc.stdout


# -- a third-party optimizer and a third-party backend, each registering two ----------------------


def test_plugins_lists_two_optimizers_and_two_backends(extension_site, tmp_path):
    for dist, entry, version in ((MOMENTUM, "momentum", "0.2.0"), (CHECKED, "checked", "0.2.0")):
        (dist_info,) = extension_site.glob(f"{dist.replace('-', '_')}-{version}.dist-info")
        entry_points = (dist_info / "entry_points.txt").read_text()
        assert f"[charrnn]\n{entry} = {dist.replace('-', '_')}" in entry_points, entry_points

    listing = plugins_json([extension_site], tmp_path)
    ours = sorted((r["kind"], r["name"], r["distribution"], r["version"], r["entry_point"])
                  for r in listing["plugins"] if r["distribution"] in (MOMENTUM, CHECKED))
    assert ours == [("backend", "checked", CHECKED, "0.2.0", "checked"),
                    ("backend", "reference", CHECKED, "0.2.0", "checked"),
                    ("operation", "momentum.update", MOMENTUM, "0.2.0", "momentum"),
                    ("operation", "nesterov.update", MOMENTUM, "0.2.0", "momentum"),
                    ("optimizer", "momentum", MOMENTUM, "0.2.0", "momentum"),
                    ("optimizer", "nesterov", MOMENTUM, "0.2.0", "momentum")]
    assert not [f for f in listing["failed"] if f["distribution"] in (MOMENTUM, CHECKED)]

    proc = charrnn("plugins", sites=[extension_site], cwd=tmp_path)
    _check(proc, "charrnn plugins")
    optimizers = re.search(r"^optimizers:\n((?:  .*\n)*)", proc.stdout, flags=re.M)
    assert optimizers, proc.stdout
    assert re.search(r"^  nesterov +charrnn-momentum-optimizer 0\.2\.0  \(entry point momentum\)$",
                     optimizers.group(1), flags=re.M), proc.stdout


def test_conformance_passes_on_both_backends_of_one_entry_point(extension_site, tmp_path):
    """The whole suite on ``checked`` (the installed optimizers included), a part of it on
    ``reference``: each backend an entry point registers is checked by its own name."""
    sites = [extension_site]
    report = tmp_path / "conformance.xml"
    proc = charrnn("conformance", "--backend", "checked", "--", f"--junitxml={report}",
                   sites=sites, cwd=tmp_path)
    summary = re.search(r"^charrnn conformance: backend 'checked' \(charrnn-checked-backend "
                        r"0\.2\.0\): passed: (\d+) passed, 0 failed, 0 skipped$", proc.stdout,
                        flags=re.M)
    assert summary and proc.returncode == 0, proc.stdout + proc.stderr
    passed = {case.get("name") for case in ET.parse(report).iter("testcase")
              if not [c for c in case if c.tag in ("failure", "error", "skipped")]}
    assert len(passed) == int(summary.group(1)) > 190, summary.group(0)
    for name in ("test_kernel[gru.backward-T7-B3-float32]", "test_gradient_check[lstm-B3-2]",
                 "test_optimizer_steps[nesterov-float64]",
                 "test_checkpoint_portability[rnn-float64-numpy]"):
        assert name in passed, sorted(passed)

    proc = charrnn("conformance", "--backend", "reference", "--", "-k", "kernel and backward",
                   sites=sites, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^charrnn conformance: backend 'reference' \(charrnn-checked-backend "
                     r"0\.2\.0\): passed: 78 passed, 0 failed, 0 skipped$", proc.stdout,
                     flags=re.M), proc.stdout


def test_conformance_checks_the_momentum_optimizers_on_numpy(extension_site, tmp_path):
    report = tmp_path / "conformance.xml"
    proc = charrnn("conformance", "--backend", "numpy", "--", "-k", "momentum or nesterov",
                   f"--junitxml={report}", sites=[extension_site], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = sorted(case.get("name") for case in ET.parse(report).iter("testcase")
                   if not [c for c in case if c.tag in ("failure", "error", "skipped")])
    expected = [f"{test}[{opt}-{dtype}]"
                for test in ("test_optimizer_steps", "test_optimizer_state_round_trip")
                for opt in ("momentum", "nesterov") for dtype in ("float64", "float32")]
    # Their updates are operations of their own: the suite checks them as every kernel.
    expected += [f"test_kernel[{opt}.update-n{n}-{dtype}]" for opt in ("momentum", "nesterov")
                 for n in (300, 100003) for dtype in ("float64", "float32")]
    expected += [f"test_kernel_properties[{opt}.update-{dtype}]"
                 for opt in ("momentum", "nesterov") for dtype in ("float64", "float32")]
    assert names == sorted(expected), names
