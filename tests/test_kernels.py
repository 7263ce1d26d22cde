"""Operations and kernels: a third party's operation with its own kernel, found through real
entry points and checked by the conformance suite; a wrong kernel caught; a removed kernel
falling back to the reference, and the suite saying so; a 0.5 backend's override still used."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy
import pytest

from helpers import examples_on_path

#: A third party's distribution: an operation (``scale.apply``, ``out = 2 x + 1``) with its
#: reference, and a kernel for it on the NumPy backend, right or wrong.
PLUGIN = '''
import numpy
from charrnn import hookimpl
from charrnn.kernels import Case, Operation, Sizes

def scale_apply(be, x, out):
    """``out = 2 x + 1``."""
    be.xp.multiply(x, 2.0, out=out)
    out += 1.0

def example(rng, sizes, dtype, saturated):
    return Case([rng.standard_normal(sizes.n).astype(dtype),
                 numpy.full(sizes.n, numpy.nan, dtype)], written=(1,))

SCALE = Operation("scale.apply", scale_apply, example, axes=("n",))

def fast_scale_apply(be, x, out):
    numpy.multiply(x, 2.0, out=out)
    numpy.add(out, {offset}, out=out)

@hookimpl
def register_operations(register):
    register(SCALE)

@hookimpl
def register_kernels(register):
    register("scale.apply", "numpy", fast_scale_apply)
'''


@pytest.fixture(autouse=True)
def _registry_restored(monkeypatch):
    """What a test installs is gone afterwards, from the path and from the registry."""
    yield
    import importlib

    from charrnn.registry import get_registry

    monkeypatch.undo()
    importlib.invalidate_caches()
    get_registry(refresh=True)


def install(site: Path, monkeypatch, offset: str) -> None:
    """The plugin as an installed distribution (metadata and entry point) on ``site``."""
    site.mkdir(exist_ok=True)
    info = site / "scale_op-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: scale-op\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[charrnn]\nscale = scale_op\n")
    (site / "scale_op.py").write_text(textwrap.dedent(PLUGIN.format(offset=offset)))
    monkeypatch.delitem(sys.modules, "scale_op", raising=False)  # each test its own version
    examples_on_path(monkeypatch, site)


def test_a_third_party_kernel_for_its_own_operation_is_found_and_checked(tmp_path, monkeypatch,
                                                                         capsys):
    from charrnn.backends.numpy_backend import NumpyBackend
    from charrnn.conformance import run_conformance
    from charrnn.registry import get_registry

    install(tmp_path / "site", monkeypatch, "1.0")
    registry = get_registry()
    operation = registry.get("operation", "scale.apply")
    be = NumpyBackend()
    assert be.kernel_source(operation) == "kernel from scale (scale-op)"
    x, out = numpy.arange(4.0), numpy.empty(4)
    be.kernel(operation)(x, out)
    numpy.testing.assert_array_equal(out, 2 * x + 1)

    capsys.readouterr()
    code = run_conformance("numpy", ["-q", "-k", "scale"])
    report = capsys.readouterr().out
    assert code == 0, report
    assert "6 passed" in report  # two sizes and the property-based cases, two dtypes
    assert "scale.apply      kernel from scale (scale-op)" in report


def test_a_wrong_kernel_fails_the_suite(tmp_path, monkeypatch, capsys):
    from charrnn.conformance import run_conformance

    install(tmp_path / "site", monkeypatch, "1.5")  # out = 2 x + 1.5
    capsys.readouterr()
    # (The property-based cases fail too, after shrinking the example: left out for time.)
    code = run_conformance("numpy", ["-q", "-k", "scale and not properties"])
    report = capsys.readouterr().out
    assert code == 1, report
    assert "scale.apply on backend 'numpy' (kernel from scale (scale-op))" in report


def test_a_removed_kernel_falls_back_to_the_reference_and_the_suite_says_so(monkeypatch, capsys):
    from charrnn.backends.numpy_backend import NumpyBackend
    from charrnn.conformance import run_conformance
    from charrnn.models.lstm import LSTM_FORWARD

    assert NumpyBackend().kernel_source(LSTM_FORWARD).startswith("kernel from numpy")
    monkeypatch.setenv("CHARRNN_REFERENCE_KERNELS", "lstm.forward")
    be = NumpyBackend()
    assert be.kernel(LSTM_FORWARD).func is LSTM_FORWARD.reference
    capsys.readouterr()
    assert run_conformance("numpy", ["-q", "-k", "kernel and lstm.forward"]) == 0
    report = capsys.readouterr().out
    assert "lstm.forward     reference (by CHARRNN_REFERENCE_KERNELS)" in report
    assert "lstm.backward    kernel from numpy" in report


def test_a_05_backend_override_is_its_kernel_with_one_deprecation_line(tmp_path, monkeypatch):
    """A backend written against 0.5's interface overrides ``lstm_forward``: the LSTM runs it,
    and the registry names the replacement in one line."""
    from charrnn.registry import get_registry

    site = tmp_path / "site"
    site.mkdir()
    info = site / "old_backend-0.5.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: old-backend\nVersion: 0.5\n")
    (info / "entry_points.txt").write_text("[charrnn]\nold = old_backend\n")
    (site / "old_backend.py").write_text(textwrap.dedent('''
        from charrnn import hookimpl
        from charrnn.backend import Backend

        CALLS = []

        class OldBackend(Backend):
            name = "old"

            def lstm_forward(self, Wh, G, H, C):
                CALLS.append(G.shape)
                return super().lstm_forward(Wh, G, H, C)

        @hookimpl
        def register_backends(register):
            register(OldBackend)
    '''))
    monkeypatch.delitem(sys.modules, "old_backend", raising=False)
    examples_on_path(monkeypatch, site)
    import charrnn
    import old_backend

    registry = get_registry()
    notes = [n for n in registry.deprecations if "'old'" in n]
    assert len(notes) == 1 and "overrides lstm_forward" in notes[0], registry.deprecations
    assert "register_kernels" in notes[0] and "\n" not in notes[0]
    data = tmp_path / "text.txt"
    data.write_text("hello world, hello kernels.\n" * 20)
    with pytest.warns(FutureWarning, match="overrides lstm_forward") as caught:
        run = charrnn.train(data=data, out=tmp_path / "run", backend="old", model="lstm",
                            hidden=8, seq_length=10, iterations=3, gradcheck=False, quiet=True)
    assert run.updates == 3
    assert len(caught) == 1  # its call up to the base class is not told again
    # Training runs it over sequences of 10; sampling, one character at a time.
    assert {shape[0] for shape in old_backend.CALLS} == {10, 1}, old_backend.CALLS


def test_a_misspelt_reference_kernels_name_is_one_line(tmp_path, monkeypatch):
    """``CHARRNN_REFERENCE_KERNELS`` naming no operation would leave the kernel it meant
    running without a word: the command line refuses it in one line, as ``charrnn.train``
    does, before anything is written."""
    import charrnn
    from helpers import TEXT, assert_one_line_error, run_in_process

    data = tmp_path / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    proc = run_in_process("run", "--data", data, "--out", tmp_path / "run", cwd=tmp_path,
                          env={"CHARRNN_REFERENCE_KERNELS": "lstm.forwrd"})
    assert_one_line_error(proc, "CHARRNN_REFERENCE_KERNELS names 'lstm.forwrd'",
                          "charrnn plugins")
    monkeypatch.setenv("CHARRNN_REFERENCE_KERNELS", "all,lstm.forwrd")
    with pytest.raises(charrnn.CharrnnError, match="lstm.forwrd"):
        charrnn.train(data=data, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
