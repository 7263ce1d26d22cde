"""The backend conformance suite: run for every installed backend, and shown to be able to fail.

For each backend the plugin registry knows, a ``TestConformance_<name>`` class below runs the whole
of :class:`charrnn.testing.BackendConformance` (the CuPy backend's cases are skipped, with the
reason, where CuPy or a GPU is missing). The other tests check the suite itself: a third-party
test module with a wrong backend fails it, a backend declaring ``{"float64": False}`` has its
float64 cases skipped, ``run_conformance`` reports a summary and exits 5 when nothing was checked,
and the CuPy backend's own code runs the suite on a CPU stand-in for CuPy.
"""
from __future__ import annotations

import re
import sys
import types

import numpy
import pytest
from charrnn.backend import Backend
from charrnn.conformance import NOTHING_CHECKED
from charrnn.errors import BackendUnavailable, CharrnnError
from charrnn.registry import PluginInfo, Registered, get_registry
from helpers import call_in_process, pytest_outcomes
from charrnn.testing import BackendConformance, run_conformance

for _name in get_registry().names("backend"):
    _class_name = "TestConformance_" + re.sub(r"\W", "_", _name)
    globals()[_class_name] = type(_class_name, (BackendConformance,),
                                  {"backend": _name, "__module__": __name__,
                                   "__qualname__": _class_name})


# -- a third party's test module, run by pytest in a subprocess ---------------------------------

THIRD_PARTY_MODULE = '''
import numpy

from charrnn.backend import Backend
from charrnn.backends.numpy_backend import NumpyBackend
from charrnn.testing import (BackendConformance, KernelConformance, ModelConformance,
                             OperationsConformance,
                             OptimizerConformance, TrainingConformance)


class CorrectThirdParty(Backend):
    """Written against the documented interface alone, with its own (correct) operations."""

    name = "thirdparty"
    xp = numpy

    def softmax(self, O, axis=-1):
        # the log-sum-exp form rather than the reference's max subtraction
        top = O.max(axis=axis, keepdims=True)
        logz = top + numpy.log(numpy.exp(O - top).sum(axis=axis, keepdims=True))
        numpy.exp(O - logz, out=O)
        return O

    def segment_sum(self, ids, values, out):
        ids = numpy.asarray(ids, dtype=numpy.int64)
        out[...] = 0
        order = numpy.argsort(ids, kind="stable")
        distinct, starts = numpy.unique(ids[order], return_index=True)
        out[distinct] = numpy.add.reduceat(values[order], starts, axis=0)
        return distinct

    def rnn_forward(self, W, A, H):
        for t in range(A.shape[0]):
            H[t + 1] = numpy.tanh(numpy.einsum("bj,ij->bi", H[t], W) + A[t])
        return H


class NoFloat64(NumpyBackend):
    name = "nofloat64"
    capabilities = {"float64": False}


class WrongSoftmax(NumpyBackend):
    """Forgets to subtract the maximum, so large logits overflow."""

    name = "wrongsoftmax"

    def softmax(self, O, axis=-1):
        numpy.exp(O, out=O)
        O /= O.sum(axis=axis, keepdims=True)
        return O


class WrongBackward(NumpyBackend):
    """Multiplies by W.T instead of W on the way back: a wrong derivative."""

    name = "wrongbackward"

    def rnn_backward(self, W, H, dH, dA):
        carry = numpy.zeros_like(dH[0])
        for t in range(dH.shape[0] - 1, -1, -1):
            h = H[t + 1]
            dA[t] = (dH[t] + carry) * (1.0 - h * h)
            carry = dA[t] @ W.T
        return dA


class MissingClip(NumpyBackend):
    """A fused AdaGrad that forgets to clip the gradient first."""

    name = "missingclip"

    def adagrad_(self, param, grad, mem, eta, eps, clip, scratch):
        mem += grad * grad
        param -= eta * grad / numpy.sqrt(mem + eps)


class DroppedState(NumpyBackend):
    """An LSTM recurrence that starts every sequence from a zero cell state."""

    name = "droppedstate"

    def lstm_forward(self, Wh, G, H, C):
        C[0] = 0.0
        return super().lstm_forward(Wh, G, H, C)


class WrongDtype(NumpyBackend):
    """Computes in float64 whatever dtype it is asked for."""

    name = "wrongdtype"

    def zeros(self, shape, dtype=None):
        return numpy.zeros(shape)

    def asarray(self, data, dtype=None):
        return numpy.asarray(data, dtype=None if dtype is None else numpy.float64)


class TestCorrectThirdParty(BackendConformance):
    backend = CorrectThirdParty


# Each wrong backend runs only the part of the suite its bug concerns (the mixins, models and
# optimizers it touches); the correct backend above runs all of it, which is what shows that
# the suite does not fail a correct backend anywhere else.

class TestNoFloat64(OperationsConformance, ModelConformance):
    backend = NoFloat64
    models = ("rnn",)


class TestWrongSoftmax(OperationsConformance):
    backend = WrongSoftmax


class TestWrongBackward(OperationsConformance, KernelConformance, ModelConformance,
                        TrainingConformance):
    backend = WrongBackward
    models = ("rnn", "lstm")
    optimizers = ("adagrad",)
    operations = ("rnn.forward", "rnn.backward", "lstm.backward")


class TestMissingClip(OperationsConformance, KernelConformance, OptimizerConformance):
    backend = MissingClip
    models = ("rnn",)
    operations = ("adagrad.update", "sgd.update")


class TestDroppedState(OperationsConformance, KernelConformance, ModelConformance,
                       TrainingConformance):
    backend = DroppedState
    models = ("lstm", "rnn")
    optimizers = ("adagrad",)
    operations = ("lstm.forward", "lstm.backward", "rnn.forward")


class TestWrongDtype(OperationsConformance, ModelConformance, TrainingConformance):
    backend = WrongDtype
    models = ("rnn",)
    optimizers = ("adagrad",)
'''


@pytest.fixture(scope="module")
def third_party_run(tmp_path_factory):
    """Outcomes of pytest on THIRD_PARTY_MODULE: {class: {test id: (outcome, message)}}, rc."""
    return pytest_outcomes(tmp_path_factory.mktemp("third_party"),
                           "test_third_party_backends.py", THIRD_PARTY_MODULE)


def failed(cases):
    return {name for name, (outcome, _) in cases.items() if outcome in ("failure", "error")}


@pytest.mark.e2e  # a pytest run of the whole suite on six backends, in a process of its own
def test_a_correct_third_party_backend_passes_every_case(third_party_run):
    cases = third_party_run[0]["TestCorrectThirdParty"]
    assert len(cases) > 150 and not failed(cases), failed(cases)
    assert all(outcome == "passed" for outcome, _ in cases.values())


@pytest.mark.e2e  # a pytest run of the whole suite on six backends, in a process of its own
def test_a_wrong_softmax_fails_the_suite(third_party_run):
    outcomes, rc, stdout = third_party_run
    assert rc == 1, stdout
    cases = outcomes["TestWrongSoftmax"]
    assert failed(cases) == {f"test_softmax[{dtype}-large-{axis}]"
                             for dtype in ("float64", "float32") for axis in ("rows", "columns")}
    assert cases["test_softmax[float64-ordinary-rows]"][0] == "passed"


def matching(names, test, *parts):
    """The names of ``test``'s cases whose parameters include every one of ``parts``."""
    out = set()
    for name in names:
        base, _, params = name.partition("[")
        if base == test and set(parts) <= set(params.rstrip("]").split("-")):
            out.add(name)
    return out


@pytest.mark.e2e  # a pytest run of the whole suite on six backends, in a process of its own
def test_a_wrong_derivative_fails_the_suite(third_party_run):
    cases = third_party_run[0]["TestWrongBackward"]
    bad = failed(cases)
    for test, parts, count in (("test_kernel", ("rnn.backward", "T7"), 4),
                               ("test_kernel", ("rnn.backward", "T64"), 4),
                               ("test_loss_and_grads", ("rnn",), 8),
                               ("test_gradient_check", ("rnn",), 8),  # with dropout too
                               ("test_train_steps", ("rnn",), 4),
                               ("test_checkpoint_portability", ("rnn",), 4)):
        assert len(matching(bad, test, *parts)) == count, (test, sorted(bad))
    # A sequence of one step never multiplies by W on the way back, and saturated states stop
    # every gradient (1 - h**2 is 0): only the longer, unsaturated cases show the bug. The
    # gated cell is right.
    assert not matching(bad, "test_kernel", "rnn.backward", "T1")
    assert not matching(bad, "test_kernel", "rnn.backward", "saturated")
    assert not matching(bad, "test_kernel", "rnn.forward")
    assert matching(set(third_party_run[0]["TestWrongBackward"]), "test_loss_and_grads", "lstm")
    assert not {n for n in bad if "lstm" in n or "gru" in n}, bad


@pytest.mark.e2e  # a pytest run of the whole suite on six backends, in a process of its own
def test_a_missing_clip_fails_the_suite(third_party_run):
    bad = failed(third_party_run[0]["TestMissingClip"])
    assert matching(bad, "test_kernel", "adagrad.update") == {
        f"test_kernel[adagrad.update-n{n}-{dtype}]" for n in (300, 100003)
        for dtype in ("float64", "float32")}
    assert len(matching(bad, "test_optimizer_steps", "adagrad")) == 2, bad
    assert all("adagrad" in n for n in bad), bad


@pytest.mark.e2e  # a pytest run of the whole suite on six backends, in a process of its own
def test_a_dropped_hidden_state_fails_the_suite(third_party_run):
    bad = failed(third_party_run[0]["TestDroppedState"])
    # T 1, 7 and 64, B 1 and 3, ordinary and saturated (a forget gate at 1 keeps c_{t-1}).
    assert len(matching(bad, "test_kernel", "lstm.forward")) == 24, bad
    assert len(matching(bad, "test_loss_and_grads", "lstm")) == 8, bad
    assert len(matching(bad, "test_step_agrees_with_loss", "lstm")) == 4, bad
    assert matching(bad, "test_train_steps", "lstm") and \
        matching(bad, "test_checkpoint_portability", "lstm"), bad
    assert matching(set(third_party_run[0]["TestDroppedState"]), "test_loss_and_grads", "rnn")
    assert all("lstm" in n for n in bad), bad


@pytest.mark.e2e  # a pytest run of the whole suite on six backends, in a process of its own
def test_the_wrong_dtype_fails_the_suite(third_party_run):
    bad = failed(third_party_run[0]["TestWrongDtype"])
    assert {"test_zeros[float32]", "test_asarray_to_numpy_round_trip[float32]",
            "test_dropout_mask[float32]"} <= bad, bad
    assert matching(bad, "test_loss_and_grads", "float32") and \
        matching(bad, "test_train_steps", "float32"), bad
    assert not {n for n in bad if "float64" in n}, bad


@pytest.mark.e2e  # a pytest run of the whole suite on six backends, in a process of its own
def test_a_backend_without_float64_has_those_cases_skipped(third_party_run):
    cases = third_party_run[0]["TestNoFloat64"]
    float64 = {n: r for n, r in cases.items() if "float64" in n or "gradient_check" in n}
    others = {n: r for n, r in cases.items() if n not in float64}
    assert float64 and all(outcome == "skipped" for outcome, _ in float64.values()), float64
    assert all("float64" in message and "nofloat64" in message
               for _, message in float64.values()), float64
    assert any("float32" in n for n in others)
    assert all(outcome == "passed" for outcome, _ in others.values()), others


# -- CuPy ---------------------------------------------------------------------------------------


def _cupy_backend():
    from charrnn.backends.cupy_backend import CupyBackend

    return CupyBackend


def test_cupy_cases_skip_with_a_reason_naming_cupy(capsys):
    CupyBackend = _cupy_backend()
    try:
        CupyBackend.check_available()
    except BackendUnavailable as exc:
        reason = str(exc)
    else:
        pytest.skip("CuPy and a GPU are usable here: the cupy conformance cases ran instead")
    assert "CuPy" in reason and ("GPU" in reason or "install" in reason), reason
    assert "\n" not in reason
    assert run_conformance("cupy") == NOTHING_CHECKED  # not a pass, and not a failure
    out = capsys.readouterr().out
    assert "backend 'cupy'" in out and "nothing was checked" in out, out
    assert re.search(r"skipped \d+: " + re.escape(reason), out), out


def test_cupy_unavailable_messages(monkeypatch):
    from charrnn.backends import cupy_backend

    probe = cupy_backend._unavailable_reason
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ModuleNotFoundError
    probe.cache_clear()
    try:
        assert probe() == ("CuPy is not installed; install it with: pip install "
                           "'charrnn-kit[cuda12]' (or [cuda13] for CUDA 13)")

        def no_device():
            raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

        fake = types.SimpleNamespace(cuda=types.SimpleNamespace(
            runtime=types.SimpleNamespace(getDeviceCount=no_device)))
        monkeypatch.setitem(sys.modules, "cupy", fake)
        probe.cache_clear()
        reason = probe()
        assert reason.startswith("CuPy is installed but no usable CUDA GPU was found (")
        assert "cudaErrorNoDevice" in reason and "--backend numpy" in reason
        with pytest.raises(BackendUnavailable, match="no usable CUDA GPU"):
            cupy_backend.CupyBackend(dtype="float32")
    finally:
        monkeypatch.undo()
        probe.cache_clear()


def _fake_cupy():
    """NumPy dressed as CuPy: device arrays are an ndarray subclass with ``.get()``.

    Not a test of CuPy: it runs the CupyBackend class's own code (its overrides, its data
    movement, its availability probe) on the CPU, where CI has no GPU.
    """

    class DeviceArray(numpy.ndarray):
        def get(self):
            return numpy.array(self)

    def device(array):
        return array.view(DeviceArray)

    cupy = types.ModuleType("cupy")
    cupy.__getattr__ = lambda name: getattr(numpy, name)  # everything else is NumPy's
    cupy.__version__ = "0+cpu-stand-in"
    cupy.ndarray = DeviceArray
    cupy.asarray = lambda data, dtype=None: (
        data.astype(dtype or data.dtype, copy=False) if isinstance(data, DeviceArray)
        else device(numpy.array(data, dtype=dtype, copy=True)))
    cupy.zeros = lambda shape, dtype=float: device(numpy.zeros(shape, dtype))
    cupy.arange = lambda *args, **kwargs: device(numpy.arange(*args, **kwargs))
    cupy.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(
            getDeviceCount=lambda: 1,
            getDeviceProperties=lambda i: {"name": b"CPU stand-in", "major": 0, "minor": 0}),
        Device=lambda: types.SimpleNamespace(id=0),
        get_current_stream=lambda: types.SimpleNamespace(synchronize=lambda: None))
    cupyx = types.ModuleType("cupyx")
    cupyx.scatter_add = numpy.add.at
    return cupy, cupyx


class TestCupyBackendCodeOnACpuStandIn(BackendConformance):
    """The CuPy backend's code against the NumPy reference, with NumPy standing in for CuPy."""

    backend = "cupy"

    @pytest.fixture
    def backend_class(self, monkeypatch):
        from charrnn.backends import cupy_backend

        cupy, cupyx = _fake_cupy()
        monkeypatch.setitem(sys.modules, "cupy", cupy)
        monkeypatch.setitem(sys.modules, "cupyx", cupyx)
        cupy_backend._unavailable_reason.cache_clear()
        yield cupy_backend.CupyBackend
        cupy_backend._unavailable_reason.cache_clear()

    def test_stand_in_is_used(self, impl):
        assert "CPU stand-in" in impl.describe()
        dev = impl.asarray(numpy.arange(3.0))
        assert type(dev).__name__ == "DeviceArray" and type(impl.to_numpy(dev)) is numpy.ndarray
        assert impl.segment_sum(impl.asarray(numpy.array([1, 1])), impl.zeros((2, 3)) + 1,
                                impl.zeros((3, 3))) is None


# -- run_conformance (what `charrnn conformance --backend NAME` calls) --------------------------


def test_run_conformance_numpy_passes_and_prints_a_summary(capsys):
    # A part of the suite: all of it runs on numpy in this file already (TestConformance_numpy).
    assert run_conformance("numpy", ["-k", "kernel or softmax or train_steps"]) == 0
    out = capsys.readouterr().out
    summary = [line for line in out.splitlines() if line.startswith("charrnn conformance:")]
    assert len(summary) == 1, out
    assert re.fullmatch(r"charrnn conformance: backend 'numpy' \(charrnn-kit [^)]+\): passed: "
                        r"\d+ passed, 0 failed, 0 skipped", summary[0]), summary[0]


def test_run_conformance_passes_extra_arguments_to_pytest(capsys):
    assert run_conformance("numpy", ["-k", "softmax and float32 and large"]) == 0
    out = capsys.readouterr().out
    counts = re.search(r": passed: (\d+) passed, 0 failed, 0 skipped", out)
    assert counts and 0 < int(counts.group(1)) <= 4, out


def test_run_conformance_unknown_backend():
    with pytest.raises(CharrnnError, match=r"unknown backend 'nope'; available: .*numpy"):
        run_conformance("nope")


def test_run_conformance_without_pytest(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytest", None)
    with pytest.raises(CharrnnError) as info:
        run_conformance("numpy")
    monkeypatch.undo()
    assert str(info.value) == "the conformance suite needs pytest: pip install 'charrnn-kit[test]'"


def test_the_suite_gets_assertion_rewriting(request):
    if not request.config.pluginmanager.has_plugin("charrnn"):
        pytest.skip("charrnn's pytest11 plugin is not loaded (plugin autoload disabled?)")
    import charrnn.testing

    assert type(charrnn.testing.__loader__).__name__ == "AssertionRewritingHook"


class Unplugged(Backend):
    """A backend whose device is missing: installed, registered, unable to run here."""

    name = "unplugged"

    @classmethod
    def check_available(cls) -> None:
        raise BackendUnavailable("the unplugged device is not connected; plug it in")


def test_every_case_skipped_exits_nothing_checked(monkeypatch, capsys):
    """A backend that cannot run here is neither passed (0) nor failed (1): status 5, and the
    summary says nothing was checked, and why."""
    plugin = PluginInfo("unplugged", "tests", "charrnn-tests", "0.0")
    monkeypatch.setitem(get_registry().items["backend"], "unplugged",
                        Registered("backend", "unplugged", Unplugged, plugin))
    assert run_conformance("unplugged", ["-k", "softmax"]) == NOTHING_CHECKED == 5
    out = capsys.readouterr().out
    assert ("charrnn conformance: backend 'unplugged' (charrnn-tests 0.0): nothing was checked: "
            "0 passed, 0 failed, 8 skipped") in out, out
    assert "  skipped 8: the unplugged device is not connected; plug it in" in out, out


class Float32Only(Backend):
    name = "float32-only"
    capabilities = {"float64": False}


def test_a_pass_with_some_cases_skipped_still_exits_0(monkeypatch, capsys):
    """Cases skipped for a capability the backend declares it lacks do not spoil a pass."""
    plugin = PluginInfo("float32-only", "tests", "charrnn-tests", "0.0")
    monkeypatch.setitem(get_registry().items["backend"], "float32-only",
                        Registered("backend", "float32-only", Float32Only, plugin))
    assert run_conformance("float32-only", ["-k", "softmax"]) == 0
    summary = capsys.readouterr().out.splitlines()
    assert "charrnn conformance: backend 'float32-only' (charrnn-tests 0.0): passed: 4 passed, " \
           "0 failed, 4 skipped" in summary, summary


def test_the_command_exits_5_when_nothing_is_selected(capsys):
    code, out, err = call_in_process(capsys, "conformance", "--backend", "numpy", "--",
                                     "-k", "no_such_case")
    assert code == NOTHING_CHECKED, (code, out, err)
    assert "backend 'numpy' (charrnn-kit " in out and \
        "): nothing was checked: 0 passed, 0 failed, 0 skipped" in out, out
