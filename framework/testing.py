"""The backend conformance suite: check that an array backend computes what the NumPy reference does.

A backend author (built-in or third-party) gets the whole suite by subclassing
:class:`BackendConformance` in any test module; no conftest, no fixtures to copy::

    # tests/test_my_backend.py
    from charrnn.testing import BackendConformance
    from my_package import MyBackend

    class TestMyBackend(BackendConformance):
        backend = MyBackend          # or the name it is registered under: backend = "mybackend"

Then ``pytest tests/test_my_backend.py``. The same suite runs from the launcher, against any
registered backend, with ``charrnn conformance --backend NAME`` (see :func:`run_conformance`).

What it checks, each against the NumPy reference computing on the host from the same
host-initialised inputs, in float64 and in float32. The reference is the base class
:class:`charrnn.backend.Backend` itself, whose operations are written once against NumPy (the core
imports no backend, so the NumPy backend plugin is checked like any other):

* every operation of :class:`charrnn.backend.Backend`: ``asarray``/``to_numpy`` round trip,
  ``to_float``, ``zeros``, ``rnn_forward``, ``rnn_backward`` (sequences of length 1 included),
  ``softmax`` (along either axis, large logits included), ``segment_sum`` (repeated and absent
  ids), ``clip_``, ``sgd_``, ``adagrad_``;
* a forward and backward pass of :class:`charrnn.model.RNN` from parameters initialised on the
  host: the loss, the last hidden state and all five gradients; one step of generation;
* several updates of :class:`charrnn.trainer.Trainer` (AdaGrad and SGD) on a small text, across an
  epoch boundary: the losses, the smooth loss, the hidden state and the final parameters;
* the gradient check under the backend alone (centred differences of ``RNN.loss`` against
  ``RNN.loss_and_grads``, float64 only);
* optimizer state: ``state_dict`` gives host NumPy arrays and a fresh optimizer that loads it
  continues identically;
* checkpoint portability: written by the backend and resumed by NumPy and by the backend, and
  written by NumPy and resumed by the backend, all continue with the same losses;
* sampling with a fixed seed: valid ids, the same ids on a second call, and the same ids as NumPy
  in float64.

Tolerances are per dtype, in the class attributes :attr:`BackendConformance.tolerances` (one
operation or one pass) and :attr:`BackendConformance.training_tolerances` (after several optimizer
updates); override them in the subclass to loosen or tighten them::

    class TestMyBackend(BackendConformance):
        backend = MyBackend
        tolerances = {**BackendConformance.tolerances, "float32": {"rtol": 1e-3, "atol": 1e-4}}

Capabilities, in the manner of SQLAlchemy's requirements: a backend declares what it does not
support in its ``capabilities`` class attribute (for example ``{"float64": False}``), and the
cases that need it are skipped with a reason naming the capability instead of failing. The names
the suite knows are listed in :data:`CAPABILITIES`; a test added in a subclass can use
:func:`requires` the same way. A backend that cannot run here (its ``check_available`` raises
:class:`charrnn.errors.BackendUnavailable`, say CuPy without a GPU) has every case skipped, with its
message as the reason.

Assertion rewriting for this module is switched on by charrnn's pytest plugin
(:mod:`charrnn.pytest_plugin`, registered through the ``pytest11`` entry point).
"""
from __future__ import annotations

import os
from typing import Any, Callable, ClassVar, Dict, List, Optional

import numpy

try:
    import pytest
except ImportError:  # run_conformance says how to install it; this module still imports
    pytest = None  # type: ignore[assignment]

from .backend import Backend
from .conformance import run_conformance
from .errors import BackendUnavailable

__all__ = ["BackendConformance", "CAPABILITIES", "requires", "resolve_backend", "run_conformance"]

#: Capability names the suite consults, and what a backend declaring ``False`` for one gives up.
CAPABILITIES: Dict[str, str] = {
    "float64": "computing in float64 (all float64 cases, the gradient check among them, are skipped)",
    "float32": "computing in float32 (all float32 cases are skipped)",
}

if pytest is not None:
    _fixture = pytest.fixture
    _parametrize = pytest.mark.parametrize
else:  # pragma: no cover - only without pytest, where the class cannot run anyway

    def _fixture(*args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]
        return lambda fn: fn

    def _parametrize(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        return lambda fn: fn


def requires(*capabilities: str) -> Callable[[Any], Any]:
    """Mark a test method as needing ``capabilities``; it is skipped for backends without them."""

    def mark(fn: Any) -> Any:
        fn._charrnn_requires = tuple(getattr(fn, "_charrnn_requires", ())) + capabilities
        return fn

    return mark


def resolve_backend(spec: Any) -> type:
    """A backend class from a class, or from the name it is registered under."""
    if isinstance(spec, type) and issubclass(spec, Backend):
        return spec
    if isinstance(spec, str):
        from .registry import get_registry

        registry = get_registry()
        if spec in registry.names("backend"):
            return registry.get("backend", spec)
        available = ", ".join(registry.names("backend")) or "none"
        failed = "; ".join(f"{p.name}: {p.error}" for p in registry.failures)
        raise LookupError(f"no backend is registered as {spec!r}; available: {available}"
                          + (f" (plugins that failed to load: {failed})" if failed else ""))
    raise TypeError(f"backend must be a Backend subclass or a registered backend name, not {spec!r}")


def _capability_skip_reason(cls: type, capability: str) -> str:
    what = CAPABILITIES.get(capability, capability)
    return (f"backend {cls.name!r} declares no support for capability {capability!r} "
            f"(capabilities = {{{capability!r}: False}}): {what}")


class BackendConformance:
    """Abstract conformance tests for an array backend; subclass it and set :attr:`backend`.

    The class name does not start with ``Test``, so pytest does not collect this base itself.
    Fixtures are methods, so a subclass needs no conftest; a subclass may override any of them,
    or the class attributes below.
    """

    #: The backend under test: a :class:`charrnn.backend.Backend` subclass or a registered name.
    backend: ClassVar[Any] = None

    #: Comparison tolerances per dtype of the backend under test (``numpy.testing.assert_allclose``).
    tolerances: ClassVar[Dict[str, Dict[str, float]]] = {
        "float64": {"rtol": 1e-9, "atol": 1e-12},
        "float32": {"rtol": 1e-4, "atol": 1e-5},
    }

    #: Tolerances for comparisons after several optimizer updates (training, checkpoints). AdaGrad's
    #: first step, ``eta * g / sqrt(g**2 + eps)``, magnifies an error in a near-zero gradient
    #: component by up to ``eta / sqrt(eps)`` (1000x), so rounding that is harmless in one pass
    #: shows in the parameters after a few updates; a real bug still moves them by ~1e-2.
    training_tolerances: ClassVar[Dict[str, Dict[str, float]]] = {
        "float64": {"rtol": 1e-7, "atol": 1e-9},
        "float32": {"rtol": 1e-3, "atol": 1e-4},
    }

    #: The dtype the NumPy reference computes in. Inputs are rounded to the tested dtype first, so
    #: both see the same numbers; None computes the reference in the tested dtype instead.
    reference_dtype: ClassVar[Optional[str]] = "float64"

    #: The small problem every check works on.
    hidden: ClassVar[int] = 8
    seq_length: ClassVar[int] = 9
    #: 40 characters: with ``seq_length`` 9, the fifth update wraps to the start of the text.
    text: ClassVar[str] = "the cat sat on the mat; the rat ate it.\n"
    sigma: ClassVar[float] = 0.3
    eta: ClassVar[float] = 0.1
    train_updates: ClassVar[int] = 5
    sample_length: ClassVar[int] = 40

    #: Centred differences: step, and the allowed difference ``atol + rtol * |numerical|``.
    gradcheck_step: ClassVar[float] = 1e-5
    gradcheck_rtol: ClassVar[float] = 1e-5
    gradcheck_atol: ClassVar[float] = 1e-7

    # -- fixtures ----------------------------------------------------------------------------

    @_fixture
    def backend_class(self) -> type:
        """The backend class; every case is skipped, with its reason, if it cannot run here."""
        if self.backend is None:
            pytest.fail(f"{type(self).__name__} does not say which backend to test; set "
                        "`backend = MyBackend` (or a registered name) in the class body")
        try:
            cls = resolve_backend(self.backend)
        except (LookupError, TypeError) as exc:
            pytest.fail(str(exc))
        try:
            cls.check_available()
        except BackendUnavailable as exc:
            pytest.skip(str(exc))
        return cls

    @_fixture(autouse=True)
    def _required_capabilities(self, request: Any, backend_class: type) -> None:
        for capability in getattr(request.function, "_charrnn_requires", ()):
            if not backend_class.supports(capability):
                pytest.skip(_capability_skip_reason(backend_class, capability))

    @_fixture(params=["float64", "float32"])
    def dtype(self, request: Any, backend_class: type) -> str:
        """Each case runs in float64 and in float32, unless the backend declares no support."""
        if not backend_class.supports(request.param):
            pytest.skip(_capability_skip_reason(backend_class, request.param))
        return request.param

    @_fixture
    def impl(self, backend_class: type, dtype: str) -> Backend:
        """The backend under test, in ``dtype``."""
        return backend_class(dtype=dtype)

    @_fixture
    def reference(self, dtype: str) -> Backend:
        """The NumPy reference, in :attr:`reference_dtype` (or ``dtype``)."""
        return Backend(dtype=self.reference_dtype or dtype)

    @_fixture
    def tol(self, dtype: str) -> Dict[str, float]:
        return dict(self.tolerances[dtype])

    @_fixture
    def training_tol(self, dtype: str) -> Dict[str, float]:
        return dict(self.training_tolerances[dtype])

    @_fixture
    def rng(self) -> numpy.random.Generator:
        return numpy.random.default_rng(20240613)

    # -- helpers -----------------------------------------------------------------------------

    def host(self, be: Backend, array: Any) -> numpy.ndarray:
        """``be.to_numpy(array)``, checked to be a host NumPy array."""
        out = be.to_numpy(array)
        assert isinstance(out, numpy.ndarray), (
            f"{type(be).__name__}.to_numpy returned {type(out).__name__}, not a numpy.ndarray")
        return out

    def device(self, be: Backend, host: Any, dtype: Any = "float") -> Any:
        """A fresh device copy of ``host`` (floats in the backend's dtype, integers as they are).

        Always a copy, so that an in-place operation never writes into the caller's host array.
        """
        host = numpy.array(host, copy=True)
        if dtype == "float":
            dtype = be.dtype if host.dtype.kind == "f" else None
        return be.asarray(host, dtype=dtype)

    def assert_close(self, actual: Any, expected: Any, tol: Dict[str, float], what: str) -> None:
        numpy.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"],
                                      err_msg=what)

    def round_to(self, dtype: str, host: numpy.ndarray) -> numpy.ndarray:
        """``host`` as the tested dtype sees it, in float64 (exact: float32 -> float64 is exact)."""
        return numpy.asarray(host).astype(dtype).astype(numpy.float64)

    def corpus(self) -> Any:
        from .data import Corpus

        return Corpus.from_text(self.text, "the conformance suite's text")

    def host_params(self, vocab_size: int, dtype: str, seed: int = 0,
                    sigma: Optional[float] = None) -> Dict[str, numpy.ndarray]:
        """Parameters from :func:`charrnn.model.init_params`, biases made non-zero, rounded to dtype."""
        from .model import init_params

        params = init_params(vocab_size, self.hidden, self.sigma if sigma is None else sigma, seed)
        rng = numpy.random.default_rng(seed + 1000)
        params["b"] = rng.standard_normal(params["b"].shape) * 0.1
        params["c"] = rng.standard_normal(params["c"].shape) * 0.1
        return {k: self.round_to(dtype, v) for k, v in params.items()}

    def sequence(self, vocab_size: int, length: int, seed: int, dtype: str):
        """Host ids x, y (uint8, as a corpus encodes them) and a hidden state h0."""
        rng = numpy.random.default_rng(seed)
        x = rng.integers(0, vocab_size, size=length).astype(numpy.uint8)
        y = rng.integers(0, vocab_size, size=length).astype(numpy.uint8)
        h0 = self.round_to(dtype, rng.uniform(-0.5, 0.5, size=self.hidden))
        return x, y, h0

    def make_trainer(self, be: Backend, params: Dict[str, numpy.ndarray], corpus: Any,
                     optimizer: str = "adagrad") -> Any:
        from .model import RNN
        from .trainer import Trainer

        model = RNN(be, corpus.vocab_size, self.hidden, params)
        opt = _optimizer_class(optimizer)(be, model.size, self.eta)
        config = {"hidden": self.hidden, "seq_length": self.seq_length, "optimizer": optimizer,
                  "eta": self.eta, "dtype": be.dtype.name}
        return Trainer(model, opt, be.asarray(corpus.ids), self.seq_length, iterations=1000,
                       config=config, corpus=corpus)

    def steps(self, trainer: Any, n: int) -> List[float]:
        return [trainer.backend.to_float(trainer.train_step()) for _ in range(n)]

    # -- the Backend interface, operation by operation ---------------------------------------

    def test_asarray_to_numpy_round_trip(self, impl, dtype, rng):
        host = rng.standard_normal((3, 4)).astype(dtype)
        dev = self.device(impl, host)
        back = self.host(impl, dev)
        assert back.shape == (3, 4)
        assert back.dtype == numpy.dtype(dtype), f"asarray(dtype={dtype}) gave {back.dtype}"
        numpy.testing.assert_array_equal(back, host, err_msg="asarray -> to_numpy changed values")
        numpy.testing.assert_array_equal(self.host(impl, dev.T), host.T,
                                         err_msg="to_numpy of a transposed view")
        ids = numpy.array([3, 0, 2, 2, 7, 255], dtype=numpy.uint8)
        back_ids = self.host(impl, impl.asarray(ids))
        assert back_ids.dtype.kind in "iu", f"integer ids came back as {back_ids.dtype}"
        numpy.testing.assert_array_equal(back_ids, ids)

    def test_to_float_and_synchronize(self, impl, dtype, tol, rng):
        host = rng.standard_normal(50).astype(dtype)
        dev = self.device(impl, host)
        value = impl.to_float(dev.sum())
        assert type(value) is float, f"to_float returned {type(value).__name__}, not float"
        self.assert_close(value, host.astype(numpy.float64).sum(), tol, "to_float of a sum")
        # A resumed trainer's smooth loss is a Python float until the next update.
        assert impl.to_float(2.5) == 2.5
        impl.synchronize()

    def test_zeros(self, impl, dtype):
        for shape, expected in ((7, (7,)), ((2, 3), (2, 3))):
            z = self.host(impl, impl.zeros(shape))
            assert z.shape == expected
            assert z.dtype == numpy.dtype(dtype), f"zeros gave {z.dtype} on a {dtype} backend"
            assert not z.any()
        z = self.host(impl, impl.zeros((4,), dtype=dtype))
        assert z.dtype == numpy.dtype(dtype) and not z.any()

    def test_describe_and_capabilities(self, backend_class):
        text = backend_class.describe()
        assert isinstance(text, str) and text.strip(), "describe() must return a non-empty line"
        assert "\n" not in text.strip(), "describe() must return one line"
        for capability in CAPABILITIES:
            assert isinstance(backend_class.supports(capability), bool)

    @_parametrize("T", [1, 7])
    def test_rnn_forward(self, impl, reference, dtype, tol, rng, T):
        m = self.hidden
        W = self.round_to(dtype, rng.standard_normal((m, m)) * 0.5)
        A = self.round_to(dtype, rng.standard_normal((T, m)))
        H = numpy.full((T + 1, m), 99.0)  # rows 1: must be overwritten
        H[0] = self.round_to(dtype, rng.uniform(-0.5, 0.5, m))

        H_ref = self.device(reference, H)
        reference.rnn_forward(self.device(reference, W), self.device(reference, A), H_ref,
                              reference.zeros(m))
        expected = self.host(reference, H_ref)

        H_dev = self.device(impl, H)
        returned = impl.rnn_forward(self.device(impl, W), self.device(impl, A), H_dev, impl.zeros(m))
        self.assert_close(self.host(impl, H_dev), expected, tol, "rnn_forward: H written in place")
        self.assert_close(self.host(impl, returned), expected, tol, "rnn_forward: returned H")

    @_parametrize("T", [1, 7])
    def test_rnn_backward(self, impl, reference, dtype, tol, rng, T):
        m = self.hidden
        W = self.round_to(dtype, rng.standard_normal((m, m)) * 0.5)
        D = self.round_to(dtype, 1.0 - numpy.tanh(rng.standard_normal((T, m))) ** 2)
        dH = self.round_to(dtype, rng.standard_normal((T, m)))
        dA = numpy.full((T, m), 99.0)  # must be overwritten

        dA_ref = self.device(reference, dA)
        reference.rnn_backward(self.device(reference, W), self.device(reference, D),
                               self.device(reference, dH), dA_ref, reference.zeros(m))
        expected = self.host(reference, dA_ref)

        dA_dev = self.device(impl, dA)
        returned = impl.rnn_backward(self.device(impl, W), self.device(impl, D),
                                     self.device(impl, dH), dA_dev, impl.zeros(m))
        self.assert_close(self.host(impl, dA_dev), expected, tol, "rnn_backward: dA written in place")
        self.assert_close(self.host(impl, returned), expected, tol, "rnn_backward: returned dA")

    @_parametrize("axis", [-1, 0], ids=["rows", "columns"])
    @_parametrize("logits", ["ordinary", "large"])
    def test_softmax(self, impl, reference, dtype, tol, rng, logits, axis):
        K = 12
        O = rng.standard_normal((6, K)) * 3.0
        if logits == "large":
            # exp overflows without the max subtraction, in float32 and float64 alike.
            O += numpy.array([1000.0, -1000.0, 500.0, 0.0, 800.0, -400.0])[:, None]
            O[3, :] = 750.0  # a row of equal large logits
            O[5, 0] = 400.0  # one logit dominating a row
        O = self.round_to(dtype, O)
        if axis == 0:  # the model's layout: one column per time step
            O = numpy.ascontiguousarray(O.T)
        what = f"softmax ({logits} logits, axis={axis})"

        def run(be):
            O_dev = self.device(be, O)
            returned = be.softmax(O_dev) if axis == -1 else be.softmax(O_dev, axis=axis)
            return self.host(be, O_dev), self.host(be, returned)

        expected, _ = run(reference)
        in_place, returned = run(impl)
        assert numpy.isfinite(in_place).all(), f"{what} is not finite"
        self.assert_close(in_place, expected, tol, f"{what}, in place")
        self.assert_close(returned, expected, tol, f"{what}, returned")
        self.assert_close(in_place.astype(numpy.float64).sum(axis=axis), numpy.ones(6), tol,
                          f"{what} sums to 1")

    @_parametrize("id_dtype", ["uint8", "int64"])
    def test_segment_sum(self, impl, reference, dtype, tol, rng, id_dtype):
        K, m = 9, self.hidden
        ids = numpy.array([3, 1, 3, 3, 0, K - 1, 1, 3], dtype=id_dtype)  # repeats; 2, 4-7 absent
        values = self.round_to(dtype, rng.standard_normal((ids.size, m)))

        def run(be):
            # ``out`` is a view into a larger flat array, as dU is inside the model's gradients.
            flat = self.device(be, numpy.full(K * m + 5, 7.0))
            out = flat[2 : 2 + K * m].reshape(K, m)
            returned = be.segment_sum(be.asarray(ids), self.device(be, values), out)
            distinct = None if returned is None else self.host(be, returned)
            return self.host(be, flat), self.host(be, out), distinct

        _, expected, _ = run(reference)
        flat, out, distinct = run(impl)
        self.assert_close(out, expected, tol, "segment_sum: out")
        absent = [k for k in range(K) if k not in set(ids.tolist())]
        assert not out[absent].any(), "segment_sum: rows no id names must be zero"
        numpy.testing.assert_array_equal(flat[:2], [7.0, 7.0],
                                         err_msg="segment_sum wrote outside out")
        numpy.testing.assert_array_equal(flat[-3:], [7.0, 7.0, 7.0],
                                         err_msg="segment_sum wrote outside out")
        if distinct is not None:  # a backend may return the distinct ids, sorted, or None
            numpy.testing.assert_array_equal(distinct, numpy.unique(ids), err_msg=(
                "segment_sum returned something other than None or the sorted distinct ids"))

    def test_clip_(self, impl, reference, dtype, rng):
        host = self.round_to(dtype, rng.standard_normal(60) * 8.0)
        host[:4] = [5.0, -5.0, 5.5, -7.25]
        dev = self.device(impl, host)
        impl.clip_(dev, -5.0, 5.0)
        ref = self.device(reference, host)
        reference.clip_(ref, -5.0, 5.0)
        numpy.testing.assert_array_equal(self.host(impl, dev), self.host(reference, ref),
                                         err_msg="clip_ is exact and in place")

    def test_sgd_(self, impl, reference, dtype, tol, rng):
        param = self.round_to(dtype, rng.standard_normal(40))
        grad = self.round_to(dtype, rng.standard_normal(40))

        def run(be):
            p, g = self.device(be, param), self.device(be, grad)
            be.sgd_(p, g, 0.1)
            return self.host(be, p), self.host(be, g)

        expected, _ = run(reference)
        p, g = run(impl)
        self.assert_close(p, expected, tol, "sgd_: param")
        numpy.testing.assert_array_equal(g, grad.astype(dtype), err_msg="sgd_ changed grad")

    def test_adagrad_(self, impl, reference, dtype, tol, rng):
        n = 40
        param = self.round_to(dtype, rng.standard_normal(n))
        mem = self.round_to(dtype, rng.standard_normal(n) ** 2)
        grads = [self.round_to(dtype, rng.standard_normal(n) * s) for s in (1.0, 1e-3, 3.0)]
        grads[1][:3] = 0.0  # a zero gradient leaves its parameter alone

        def run(be):
            p, mm, scratch = self.device(be, param), self.device(be, mem), be.zeros(n)
            kept = []
            for g in grads:
                g_dev = self.device(be, g)
                be.adagrad_(p, g_dev, mm, 0.1, 1e-8, scratch)
                kept.append(self.host(be, g_dev))
            return self.host(be, p), self.host(be, mm), kept

        p_ref, mem_ref, _ = run(reference)
        p, mm, kept = run(impl)
        self.assert_close(p, p_ref, tol, "adagrad_: param after three updates")
        self.assert_close(mm, mem_ref, tol, "adagrad_: accumulated squared gradients")
        for g, g_after in zip(grads, kept):
            numpy.testing.assert_array_equal(g_after, g.astype(dtype),
                                             err_msg="adagrad_ changed grad (use scratch)")

    # -- the model ---------------------------------------------------------------------------

    def test_loss_and_grads(self, impl, reference, dtype, tol):
        from .model import PARAM_NAMES, RNN

        K, T = 13, self.seq_length
        params = self.host_params(K, dtype, seed=3)
        x, y, h0 = self.sequence(K, T, seed=4, dtype=dtype)

        def run(be):
            model = RNN(be, K, self.hidden, params)
            xd, yd, hd = be.asarray(x), be.asarray(y), self.device(be, h0)
            loss, h = model.loss_and_grads(xd, yd, hd)
            out = {"loss": be.to_float(loss), "h": self.host(be, h), **model.get_grads()}
            # Again, on the buffers the first call allocated; and the loss alone, with h.
            loss2, _ = model.loss_and_grads(xd, yd, hd)
            out["loss again"] = be.to_float(loss2)
            out["loss only"], h_only = model.loss(xd, yd, hd, return_hidden=True)
            out["h from loss"] = self.host(be, h_only)
            out["h0 after"] = self.host(be, hd)
            return out

        expected, got = run(reference), run(impl)
        for key in ("loss", "h", *PARAM_NAMES, "loss again", "loss only", "h from loss"):
            self.assert_close(got[key], expected[key], tol, f"loss_and_grads: {key}")
        numpy.testing.assert_array_equal(got["h0 after"], h0.astype(dtype),
                                         err_msg="loss_and_grads modified the incoming h0")

    def test_step_hidden(self, impl, reference, dtype, tol):
        from .model import RNN

        K = 13
        params = self.host_params(K, dtype, seed=5)
        _, _, h0 = self.sequence(K, 1, seed=6, dtype=dtype)

        def run(be):
            model = RNN(be, K, self.hidden, params)
            h, logits = model.step_hidden(self.device(be, h0), 4)
            h, logits2 = model.step_hidden(h, 11)
            return self.host(be, h), self.host(be, logits), self.host(be, logits2)

        for name, a, b in zip(("h", "logits", "logits of the second step"), run(impl),
                              run(reference)):
            self.assert_close(a, b, tol, f"step_hidden: {name}")

    # -- training ----------------------------------------------------------------------------

    @_parametrize("optimizer", ["adagrad", "sgd"])
    def test_train_steps(self, impl, reference, dtype, training_tol, optimizer):
        corpus = self.corpus()
        params = self.host_params(corpus.vocab_size, dtype, seed=7, sigma=0.1)

        def run(be):
            trainer = self.make_trainer(be, params, corpus, optimizer)
            losses = self.steps(trainer, self.train_updates)
            return {"losses": losses, "smooth loss": trainer.smooth_loss_value(),
                    "h": self.host(be, trainer.h), "epoch": trainer.epoch,
                    "position": trainer.position, **trainer.model.get_params()}

        expected, got = run(reference), run(impl)
        assert (got["epoch"], got["position"]) == (expected["epoch"], expected["position"])
        for key, value in expected.items():
            if key not in ("epoch", "position"):
                self.assert_close(got[key], value, training_tol,
                                  f"{self.train_updates} {optimizer} updates: {key}")

    @requires("float64")
    @_parametrize("length", ["one step", "full sequence"])
    def test_gradient_check(self, backend_class, length):
        """Analytic gradients against centred differences, under the backend alone."""
        from .model import PARAM_NAMES, RNN

        be = backend_class(dtype="float64")
        K, T = 13, 1 if length == "one step" else self.seq_length
        params = self.host_params(K, "float64", seed=8)
        x, y, h0 = self.sequence(K, T, seed=9, dtype="float64")
        model = RNN(be, K, self.hidden, params)
        xd, yd, hd = be.asarray(x), be.asarray(y), self.device(be, h0)
        model.loss_and_grads(xd, yd, hd)
        analytic = model.get_grads()

        rng = numpy.random.default_rng(10)
        host, step, bad = model.get_params(), self.gradcheck_step, []
        for name in PARAM_NAMES:
            g = analytic[name].reshape(-1)
            picks = set(numpy.argsort(-numpy.abs(g))[:3].tolist())  # the largest ...
            picks |= set(rng.choice(g.size, size=min(3, g.size), replace=False).tolist())  # ... and any
            for flat_index in sorted(picks):
                idx = numpy.unravel_index(flat_index, host[name].shape)
                original = host[name][idx]
                host[name][idx] = original + step
                model.set_params(host)
                plus = model.loss(xd, yd, hd)
                host[name][idx] = original - step
                model.set_params(host)
                minus = model.loss(xd, yd, hd)
                host[name][idx] = original
                numerical = (plus - minus) / (2 * step)
                a = float(analytic[name][idx])
                if abs(a - numerical) > self.gradcheck_atol + self.gradcheck_rtol * abs(numerical):
                    bad.append(f"d{name}{tuple(int(i) for i in idx)}: analytic {a:.10g}, "
                               f"centred difference {numerical:.10g}")
        model.set_params(host)
        assert not bad, (f"gradient check ({length}, T={T}) failed for {len(bad)} entries: "
                         + "; ".join(bad[:8]))

    @_parametrize("optimizer", ["adagrad", "sgd"])
    def test_optimizer_state_round_trip(self, impl, reference, dtype, tol, rng, optimizer):
        cls = _optimizer_class(optimizer)
        size = 30
        start = self.round_to(dtype, rng.standard_normal(size))
        grads = [self.round_to(dtype, rng.standard_normal(size)) for _ in range(4)]

        opt = cls(impl, size, self.eta)
        param = self.device(impl, start)
        for g in grads[:2]:
            opt.step(param, self.device(impl, g))
        state = opt.state_dict()
        snapshot = {}
        for key, value in state.items():
            if hasattr(value, "shape"):
                assert isinstance(value, numpy.ndarray), (
                    f"{optimizer} state_dict()[{key!r}] is a {type(value).__name__}, not a host "
                    "numpy.ndarray")
                snapshot[key] = value.copy()
        midway = self.host(impl, param).copy()

        fresh = cls(impl, size, eta=self.eta * 7)  # load_state_dict must restore eta too
        fresh.load_state_dict(state)
        param2 = self.device(impl, midway)
        ref_opt = cls(reference, size, eta=self.eta * 7)
        ref_opt.load_state_dict(state)
        param_ref = self.device(reference, midway)
        for g in grads[2:]:
            opt.step(param, self.device(impl, g))
            fresh.step(param2, self.device(impl, g))
            ref_opt.step(param_ref, self.device(reference, g))
        for key, value in snapshot.items():
            numpy.testing.assert_array_equal(state[key], value, err_msg=(
                f"{optimizer} state_dict()[{key!r}] changed as training went on: it aliases "
                "the optimizer's live state instead of being a copy"))
        self.assert_close(self.host(impl, param2), self.host(impl, param), tol,
                          f"{optimizer}: a fresh optimizer loaded from state_dict continues identically")
        self.assert_close(self.host(impl, param), self.host(reference, param_ref), tol,
                          f"{optimizer}: continuing from the same state as NumPy")
        for key, value in fresh.state_dict().items():
            if hasattr(value, "shape"):
                self.assert_close(value, opt.state_dict()[key], tol, f"{optimizer} state {key!r}")

    @_parametrize("writer", ["backend", "numpy"])
    def test_checkpoint_portability(self, backend_class, impl, dtype, training_tol, tmp_path,
                                    writer):
        """A checkpoint written on one backend resumes on the other with the same losses."""
        from .checkpoint import load_checkpoint, save_checkpoint

        corpus = self.corpus()
        params = self.host_params(corpus.vocab_size, dtype, seed=11, sigma=0.1)
        other_params = self.host_params(corpus.vocab_size, dtype, seed=12, sigma=0.1)
        numpy_be = Backend(dtype=dtype)
        writer_be = impl if writer == "backend" else numpy_be

        first = self.make_trainer(writer_be, params, corpus)
        self.steps(first, 3)
        path = os.path.join(str(tmp_path), "latest.npz")
        save_checkpoint(path, first.checkpoint())
        ckpt = load_checkpoint(path)
        assert ckpt.meta["backend"] == writer_be.name and ckpt.meta["dtype"] == dtype
        # Uninterrupted, the writer goes on (across the epoch boundary) ...
        expected = self.steps(first, 3)
        expected_params = first.model.get_params()

        # ... and so do a NumPy trainer and a trainer on the backend resumed from the file.
        for label, be in (("numpy", numpy_be), (backend_class.name, backend_class(dtype=dtype))):
            resumed = self.make_trainer(be, other_params, corpus)
            resumed.restore(load_checkpoint(path))
            losses = self.steps(resumed, 3)
            what = f"written by {writer_be.name}, resumed on {label}"
            self.assert_close(losses, expected, training_tol, f"checkpoint {what}: losses")
            for name, value in resumed.model.get_params().items():
                self.assert_close(value, expected_params[name], training_tol,
                                  f"checkpoint {what}: {name}")

    # -- sampling ----------------------------------------------------------------------------

    def test_sample_ids(self, impl, reference, dtype):
        from .model import RNN
        from .sampling import sample_ids

        K = 13
        params = self.host_params(K, dtype, seed=13, sigma=0.5)
        _, _, h0 = self.sequence(K, 1, seed=14, dtype=dtype)

        def run(be, **kwargs):
            model = RNN(be, K, self.hidden, params)
            hd = self.device(be, h0)
            ids = sample_ids(model, hd, 2, self.sample_length,
                             rng=numpy.random.default_rng(1234), **kwargs)
            numpy.testing.assert_array_equal(self.host(be, hd), h0.astype(dtype),
                                             err_msg="sample_ids modified h0")
            return ids

        for kwargs in ({}, {"temperature": 0.7, "top_k": 3}):
            ids = run(impl, **kwargs)
            assert len(ids) == self.sample_length
            assert all(isinstance(i, int) and 0 <= i < K for i in ids), f"invalid ids: {ids}"
            assert run(impl, **kwargs) == ids, "the same seed must give the same ids"
            if dtype == "float64":
                # Probabilities agree to ~1e-15; a draw would have to land that close to a
                # boundary between two ids for a correct backend to differ.
                assert ids == run(reference, **kwargs), "float64 samples differ from NumPy's"


def _optimizer_class(name: str) -> type:
    if name == "adagrad":
        from .optimizers.adagrad import AdaGrad

        return AdaGrad
    if name == "sgd":
        from .optimizers.sgd import SGD

        return SGD
    raise ValueError(f"unknown optimizer {name!r}")
