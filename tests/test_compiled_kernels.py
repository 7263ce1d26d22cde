"""The NumPy backend's compiled (numba) kernels: registered where numba is installed, switched
off by ``CHARRNN_NUMBA=0``, bit for bit with the reference where they promise it, and their
compile time kept out of training time.

The conformance suite checks every registered kernel against its reference in both dtypes
(``tests/test_conformance.py``); this file checks what is particular to these."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy
import pytest

from helpers import make_trainer

numba = pytest.importorskip("numba")

COMPILED_MODULE = "charrnn.backends.numba_kernels"


def _module(be, operation) -> str:
    """The module of the function that runs ``operation`` on ``be`` (unwrapping the backend
    bound to it)."""
    kernel = be.resolve(operation)
    return getattr(kernel, "func", kernel).__module__


@pytest.fixture(scope="module")
def corpus():
    from charrnn.data import load_corpus

    return load_corpus(None, "utf-8", 25)


def _operations():
    from charrnn.models.gru import GRU_BACKWARD, GRU_FORWARD
    from charrnn.models.lstm import LSTM_BACKWARD, LSTM_FORWARD
    from charrnn.models.rnn import RNN_BACKWARD, RNN_FORWARD
    from charrnn.optimizers.adagrad import ADAGRAD_UPDATE
    from charrnn.optimizers.adam import ADAM_UPDATE
    from charrnn.optimizers.rmsprop import RMSPROP_UPDATE
    from charrnn.optimizers.sgd import SGD_UPDATE

    return [LSTM_FORWARD, LSTM_BACKWARD, GRU_FORWARD, GRU_BACKWARD, RNN_FORWARD, RNN_BACKWARD,
            ADAGRAD_UPDATE, ADAM_UPDATE, RMSPROP_UPDATE, SGD_UPDATE]


def test_every_compiled_operation_is_the_numpy_backends_kernel():
    from charrnn.backends.numpy_backend import NumpyBackend

    be = NumpyBackend("float32")
    for operation in _operations():
        assert _module(be, operation) == COMPILED_MODULE, operation.name
        assert be.kernel_source(operation).startswith("kernel from numpy"), operation.name


def test_charrnn_numba_0_registers_the_numpy_kernels(monkeypatch):
    from charrnn.backends.numpy_backend import NumpyBackend
    from charrnn.models.lstm import LSTM_FORWARD
    from charrnn.optimizers.adam import ADAM_UPDATE
    from charrnn.registry import get_registry

    monkeypatch.setenv("CHARRNN_NUMBA", "0")
    try:
        get_registry(refresh=True)
        be = NumpyBackend("float32")
        assert _module(be, LSTM_FORWARD) == "charrnn.backends.numpy_kernels"
        # No NumPy kernel for the optimizer: the reference runs, and says so.
        assert be.kernel_source(ADAM_UPDATE) == "reference"
    finally:
        monkeypatch.delenv("CHARRNN_NUMBA")
        get_registry(refresh=True)
    assert _module(NumpyBackend("float32"), LSTM_FORWARD) == COMPILED_MODULE


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_optimizer_updates_compute_the_references_numbers_bit_for_bit(dtype):
    """The same operations in the same order and dtype: not close, equal (the course model's
    trajectory rests on it)."""
    from charrnn.backend import Backend
    from charrnn.backends.numpy_backend import NumpyBackend
    from charrnn.kernels import Sizes

    be, reference = NumpyBackend(dtype), Backend(dtype)
    for operation in _operations()[6:]:
        for n in (1, 300, 70_001):
            case = operation.example(numpy.random.default_rng(n), Sizes(n=n), dtype, False)
            got = [a.copy() if isinstance(a, numpy.ndarray) else a for a in case.args]
            want = [a.copy() if isinstance(a, numpy.ndarray) else a for a in case.args]
            be.kernel(operation)(*got)
            operation.reference(reference, *want)
            for i in case.written:
                numpy.testing.assert_array_equal(got[i], want[i], err_msg=f"{operation.name} n={n}")


def test_a_nan_gradient_stays_nan_through_the_compiled_clip():
    """A diverged run must still look diverged: the clip does not turn NaN into a number."""
    from charrnn.backends.numpy_backend import NumpyBackend
    from charrnn.optimizers.adagrad import ADAGRAD_UPDATE

    be = NumpyBackend("float64")
    param, grad, mem = numpy.ones(5), numpy.array([1.0, numpy.nan, -9.0, 9.0, 0.0]), numpy.zeros(5)
    be.kernel(ADAGRAD_UPDATE)(param, grad, mem, 0.1, 1e-8, 5.0, numpy.empty(5))
    assert numpy.isnan(param[1]) and numpy.isnan(grad[1])
    assert grad[2] == -5.0 and grad[3] == 5.0


def test_the_batched_models_train_alike_with_and_without_the_compiled_kernels(corpus, monkeypatch):
    """Twenty updates of a 2-layer GRU and LSTM in float64: the compiled kernels and the NumPy
    ones agree to rounding (they differ only in the order of a few additions)."""
    from charrnn.backends.numpy_backend import NumpyBackend
    from charrnn.registry import get_registry

    def train(model):
        trainer = make_trainer(NumpyBackend("float64"), corpus, model=model, hidden=16,
                               layers=2, batch=4, seq_length=12, optimizer="adam")
        for _ in range(20):
            trainer.train_step()
        return trainer.model.get_params()

    compiled = {model: train(model) for model in ("lstm", "gru")}
    monkeypatch.setenv("CHARRNN_NUMBA", "0")
    try:
        get_registry(refresh=True)
        plain = {model: train(model) for model in ("lstm", "gru")}
    finally:
        monkeypatch.delenv("CHARRNN_NUMBA")
        get_registry(refresh=True)
    for model in compiled:
        for name, value in compiled[model].items():
            numpy.testing.assert_allclose(value, plain[model][name], rtol=1e-9, atol=1e-12,
                                          err_msg=f"{model} {name}")


def test_compiling_is_counted_apart_from_training_time(tmp_path):
    """In a fresh process the first call of each compiled kernel compiles it (or loads it from
    numba's cache): the backend counts that time, and the trainer's clock leaves it out."""
    script = textwrap.dedent("""
        import time
        from charrnn import RunConfig
        from charrnn.assembly import build_trainer
        from charrnn.data import load_corpus

        corpus = load_corpus(None, "utf-8", 16)
        config = RunConfig(model="gru", hidden=16, layers=2, batch_size=4, seq_length=16,
                           optimizer="adam", dtype="float32", iterations=10**9, seed=0)
        trainer = build_trainer(config, corpus=corpus, plugins=False)
        trainer.started_at = time.perf_counter()
        trainer.compile_seconds_before = trainer.backend.compile_seconds
        trainer.train_step()
        trainer.ended_at = time.perf_counter()
        compiled = trainer.backend.compile_seconds
        assert compiled > 0, compiled
        assert trainer.elapsed() == trainer.ended_at - trainer.started_at - compiled
        trainer.ended_at = None
        trainer.train_step()
        assert trainer.backend.compile_seconds == compiled  # counted once per dtype
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
