"""The backend conformance suite: check that an array backend computes what the reference does.

A backend author (built-in or third-party) gets the whole suite by subclassing
:class:`BackendConformance` in any test module; no conftest, no fixtures to copy::

    # tests/test_my_backend.py
    from charrnn.testing import BackendConformance
    from my_package import MyBackend

    class TestMyBackend(BackendConformance):
        backend = MyBackend          # or the name it is registered under: backend = "mybackend"

Then ``pytest tests/test_my_backend.py``. The same suite runs from the launcher, against any
registered backend, with ``charrnn conformance --backend NAME`` (see :func:`run_conformance`).

The suite is split by area into mixins, as fsspec's abstract tests are, so a backend still under
construction can take the parts it is ready for (each needs :class:`ConformanceFixtures`, which
they all derive from)::

    class TestMyOps(OperationsConformance):     # the backend's operations, one by one
        backend = MyBackend

* :class:`OperationsConformance`: every operation of :class:`charrnn.backend.Backend`: moving
  data, ``softmax`` (large logits included), ``segment_sum``, ``clip_``, ``clip_norm_``, ``dropout_mask``, the
  whole-sequence recurrences of the built-in models (``rnn_``, ``lstm_`` and ``gru_forward`` and
  ``_backward``, at B=1 and B>1) and the fused clip-and-update operations of the optimizers;
* :class:`ModelConformance`: for every registered model (:attr:`ConformanceFixtures.models`), at
  B=1 and B>1 and with one and two layers: the loss, the state after the sequence and every
  gradient of ``loss_and_grads``, the loss alone, two steps of generation, that generation
  agrees with the loss, and a gradient check (centred differences under the backend alone,
  float64);
* :class:`OptimizerConformance`: every registered optimizer's updates, with a clip, with and
  without the hint of which rows a sequence touched (an optimizer that cannot use it must ignore
  it), and its state round trip;
* :class:`TrainingConformance`: several trainer updates across an epoch boundary for every model,
  checkpoints written on one backend and resumed on the other, and seeded sampling.

Every check but the gradient checks and the check that generation agrees with the loss (which run
on the backend alone) compares against the reference computing on the host from the same
host-initialised inputs, in float64 and in float32. The reference is the base class
:class:`charrnn.backend.Backend` itself, with its ``xp`` left at NumPy: its operations are written
once, plainly. It is not the NumPy backend plugin (``charrnn.backends.numpy_backend``), which has
optimisations of its own and is checked against the reference like any other backend; the core
imports no backend.

Tolerances are per dtype, in the class attributes :attr:`ConformanceFixtures.tolerances` (one
operation or one pass) and :attr:`ConformanceFixtures.training_tolerances` (after several optimizer
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
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence

import numpy

try:
    import pytest
except ImportError:  # run_conformance says how to install it; this module still imports
    pytest = None  # type: ignore[assignment]

from .backend import Backend
from .conformance import run_conformance
from .errors import BackendUnavailable, CharrnnError

__all__ = ["BackendConformance", "ConformanceFixtures", "OperationsConformance",
           "ModelConformance", "OptimizerConformance", "TrainingConformance", "CAPABILITIES",
           "requires", "resolve_backend", "run_conformance"]

#: Capability names the suite consults, and what a backend declaring ``False`` for one gives up.
CAPABILITIES: Dict[str, str] = {
    "float64": "computing in float64 (all float64 cases, the gradient checks among them, are skipped)",
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
    """Mark a test method as needing ``capabilities``.

    A case added in a subclass with it is skipped, with a reason naming the capability, for a
    backend that declares the capability ``False``, as the suite's own float64 cases are: a
    backend is not failed for what it says it does not do.
    """

    def mark(fn: Any) -> Any:
        fn._charrnn_requires = tuple(getattr(fn, "_charrnn_requires", ())) + capabilities
        return fn

    return mark


def resolve_backend(spec: Any) -> type:
    """A backend class from a class, or from the name it is registered under.

    An unknown name raises :class:`LookupError` listing the registered backends and the plugins
    that failed to load; the suite then fails every case with that line rather than skipping
    them, because a misspelt name is the test author's mistake, not the machine's.
    """
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


def _registered(kind: str) -> List[str]:
    from .registry import get_registry

    return get_registry().names(kind)


def _registered_class(kind: str, name: str) -> type:
    from .registry import get_registry

    return get_registry().get(kind, name)


def _capability_skip_reason(cls: type, capability: str) -> str:
    what = CAPABILITIES.get(capability, capability)
    return (f"backend {cls.name!r} declares no support for capability {capability!r} "
            f"(capabilities = {{{capability!r}: False}}): {what}")


class ConformanceFixtures:
    """Fixtures, helpers and settings every part of the suite shares; set :attr:`backend`.

    The class name does not start with ``Test``, so pytest does not collect this base itself.
    Fixtures are methods, so a subclass needs no conftest; a subclass may override any of them,
    or the class attributes below.
    """

    #: The backend under test: a :class:`charrnn.backend.Backend` subclass or a registered name.
    backend: ClassVar[Any] = None
    #: Models to check (registered names); None checks every registered model.
    models: ClassVar[Optional[Sequence[str]]] = None
    #: Optimizers to check (registered names); None checks every registered optimizer.
    optimizers: ClassVar[Optional[Sequence[str]]] = None
    #: Batch sizes the models and recurrences are checked at: one stream and several.
    batches: ClassVar[Sequence[int]] = (1, 3)

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

    #: The dtype the reference computes in. Inputs are rounded to the tested dtype first, so
    #: both see the same numbers; None computes the reference in the tested dtype instead.
    reference_dtype: ClassVar[Optional[str]] = "float64"

    #: The small problem every check works on.
    hidden: ClassVar[int] = 8
    seq_length: ClassVar[int] = 9
    vocab_size: ClassVar[int] = 13
    #: 40 characters: with ``seq_length`` 9, the fifth update wraps to the start of the text.
    text: ClassVar[str] = "the cat sat on the mat; the rat ate it.\n"
    sigma: ClassVar[float] = 0.3
    eta: ClassVar[float] = 0.1
    clip: ClassVar[float] = 5.0
    train_updates: ClassVar[int] = 5
    sample_length: ClassVar[int] = 40

    #: Centred differences: step, and the allowed difference ``atol + rtol * |numerical|``.
    gradcheck_step: ClassVar[float] = 1e-5
    gradcheck_rtol: ClassVar[float] = 1e-5
    gradcheck_atol: ClassVar[float] = 1e-7

    # -- parametrization from the registry ---------------------------------------------------

    def pytest_generate_tests(self, metafunc: Any) -> None:
        """Cases for each model and optimizer the registry holds (or the class names)."""
        if "model_name" in metafunc.fixturenames:
            metafunc.parametrize("model_name", list(self.models or _registered("model")))
        if "optimizer_name" in metafunc.fixturenames:
            metafunc.parametrize("optimizer_name",
                                 list(self.optimizers or _registered("optimizer")))
        if "batch" in metafunc.fixturenames:
            metafunc.parametrize("batch", list(self.batches), ids=[f"B{b}" for b in self.batches])

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
        """The reference: the base :class:`~charrnn.backend.Backend` itself, computing with NumPy
        on the host, in :attr:`reference_dtype` (or ``dtype``). Not the NumPy backend plugin,
        whose optimisations are themselves checked against it."""
        return Backend(dtype=self.reference_dtype or dtype)

    @_fixture
    def tol(self, dtype: str) -> Dict[str, float]:
        """``rtol`` and ``atol`` for one operation or one pass, from :attr:`tolerances`."""
        return dict(self.tolerances[dtype])

    @_fixture
    def training_tol(self, dtype: str) -> Dict[str, float]:
        """``rtol`` and ``atol`` after several updates, from :attr:`training_tolerances`."""
        return dict(self.training_tolerances[dtype])

    @_fixture
    def rng(self) -> numpy.random.Generator:
        """A host generator with a fixed seed: every run draws the same inputs."""
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

    def round_to(self, dtype: str, host: Any) -> numpy.ndarray:
        """``host`` as the tested dtype sees it, in float64 (exact: float32 -> float64 is exact)."""
        return numpy.asarray(host).astype(dtype).astype(numpy.float64)

    def corpus(self) -> Any:
        from .data import Corpus

        return Corpus.from_text(self.text, "the conformance suite's text")

    def model_class(self, name: str) -> type:
        return _registered_class("model", name)

    def optimizer_class(self, name: str) -> type:
        return _registered_class("optimizer", name)

    def host_params(self, model_cls: type, vocab_size: int, dtype: str, seed: int = 0,
                    layers: int = 1, sigma: Optional[float] = None) -> Dict[str, numpy.ndarray]:
        """Every parameter (biases too, so they matter) drawn ``randn * sigma``, rounded to dtype."""
        rng = numpy.random.default_rng(seed)
        try:
            shapes = model_cls.param_shapes(vocab_size, hidden=self.hidden, layers=layers)
        except CharrnnError as exc:
            if layers == 1:
                raise
            pytest.skip(f"the {model_cls.name} model refuses {layers} layers: {exc}")
        scale = self.sigma if sigma is None else sigma
        return {k: self.round_to(dtype, rng.standard_normal(s) * scale) for k, s in shapes.items()}

    def make_model(self, be: Backend, model_cls: type, vocab_size: int,
                   params: Dict[str, numpy.ndarray], layers: int = 1) -> Any:
        """The model under test. A model may refuse an option (a model without layers refuses a
        stack): the case is then skipped with its reason."""
        try:
            return model_cls(be, vocab_size, hidden=self.hidden, layers=layers, params=params)
        except CharrnnError as exc:
            if layers == 1:
                raise
            pytest.skip(f"the {model_cls.name} model refuses {layers} layers: {exc}")

    def host_state(self, model: Any, batch: int, dtype: str, seed: int) -> List[numpy.ndarray]:
        """A state of the model's shapes with every entry non-zero, rounded to dtype."""
        rng = numpy.random.default_rng(seed)
        return [self.round_to(dtype, rng.uniform(-0.5, 0.5, tuple(s.shape)))
                for s in model.zero_state(batch)]

    def sequences(self, vocab_size: int, length: int, batch: int, seed: int):
        """Host ids x, y (T, B), uint8 as a corpus encodes them."""
        rng = numpy.random.default_rng(seed)
        x = rng.integers(0, vocab_size, size=(length, batch)).astype(numpy.uint8)
        y = rng.integers(0, vocab_size, size=(length, batch)).astype(numpy.uint8)
        return x, y

    def make_trainer(self, be: Backend, model_name: str, params: Dict[str, numpy.ndarray],
                     corpus: Any, optimizer: str = "adagrad", batch: int = 1) -> Any:
        """A trainer built as ``charrnn.train`` builds one (without the registered callbacks),
        on ``be``, holding ``params``."""
        from .assembly import build_trainer
        from .run_config import RunConfig

        config = RunConfig(model=model_name, hidden=self.hidden, seq_length=self.seq_length,
                           optimizer=optimizer, batch_size=batch, eta=self.eta, clip=self.clip,
                           dtype=be.dtype.name, iterations=1000)
        trainer = build_trainer(config, corpus=corpus, backend=be, plugins=False)
        trainer.model.set_params(params)
        return trainer

    def steps(self, trainer: Any, n: int) -> List[float]:
        return [trainer.backend.to_float(trainer.train_step()) for _ in range(n)]


# -- the backend's operations, one by one -------------------------------------------------------

class OperationsConformance(ConformanceFixtures):
    """Every operation of :class:`charrnn.backend.Backend` against the reference."""

    def test_asarray_to_numpy_round_trip(self, impl, dtype, rng):
        """Host data reaches the device and comes back unchanged, in the backend's dtype; a
        transposed view comes back transposed; ``uint8`` ids stay integers."""
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
        """``to_float`` gives a Python float, of a device scalar and of a Python float (a resumed
        trainer's smooth loss is one until the next update); ``synchronize`` returns."""
        host = rng.standard_normal(50).astype(dtype)
        dev = self.device(impl, host)
        value = impl.to_float(dev.sum())
        assert type(value) is float, f"to_float returned {type(value).__name__}, not float"
        self.assert_close(value, host.astype(numpy.float64).sum(), tol, "to_float of a sum")
        # A resumed trainer's smooth loss is a Python float until the next update.
        assert impl.to_float(2.5) == 2.5
        impl.synchronize()

    def test_zeros(self, impl, dtype):
        """Zeros of the shape asked (an int or a tuple), in the backend's dtype unless told."""
        for shape, expected in ((7, (7,)), ((2, 3), (2, 3)), ((2, 1, 3), (2, 1, 3))):
            z = self.host(impl, impl.zeros(shape))
            assert z.shape == expected
            assert z.dtype == numpy.dtype(dtype), f"zeros gave {z.dtype} on a {dtype} backend"
            assert not z.any()
        z = self.host(impl, impl.zeros((4,), dtype=dtype))
        assert z.dtype == numpy.dtype(dtype) and not z.any()

    def test_describe_and_capabilities(self, backend_class):
        """``describe()`` is one non-empty line; ``supports()`` answers a bool for every name in
        :data:`CAPABILITIES`."""
        text = backend_class.describe()
        assert isinstance(text, str) and text.strip(), "describe() must return a non-empty line"
        assert "\n" not in text.strip(), "describe() must return one line"
        for capability in CAPABILITIES:
            assert isinstance(backend_class.supports(capability), bool)

    @_parametrize("axis", [-1, 0], ids=["rows", "columns"])
    @_parametrize("logits", ["ordinary", "large"])
    def test_softmax(self, impl, reference, dtype, tol, rng, logits, axis):
        """Along either axis, in place and returned, as the reference computes it. Large logits
        (a row at 1000, a row of equal large logits) overflow a softmax that does not subtract
        the maximum first."""
        K = 12
        O = rng.standard_normal((6, K)) * 3.0
        if logits == "large":
            # exp overflows without the max subtraction, in float32 and float64 alike.
            O += numpy.array([1000.0, -1000.0, 500.0, 0.0, 800.0, -400.0])[:, None]
            O[3, :] = 750.0  # a row of equal large logits
            O[5, 0] = 400.0  # one logit dominating a row
        O = self.round_to(dtype, O)
        if axis == 0:
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
        """Rows summed by id, with repeated and absent ids, from ``uint8`` and ``int64`` ids, into
        a view of a larger array that must not be written outside. The return value is None or
        the sorted distinct ids, since optimizers update only those rows."""
        K, m = 9, self.hidden
        ids = numpy.array([3, 1, 3, 3, 0, K - 1, 1, 3], dtype=id_dtype)  # repeats; 2, 4-7 absent
        values = self.round_to(dtype, rng.standard_normal((ids.size, m)))

        def run(be):
            # ``out`` is a view into a larger flat array, as an embedding's gradient is.
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
        """In place, and equal to the reference bit for bit: clipping is exact."""
        host = self.round_to(dtype, rng.standard_normal(60) * 8.0)
        host[:4] = [5.0, -5.0, 5.5, -7.25]
        dev = self.device(impl, host)
        impl.clip_(dev, -5.0, 5.0)
        ref = self.device(reference, host)
        reference.clip_(ref, -5.0, 5.0)
        numpy.testing.assert_array_equal(self.host(impl, dev), self.host(reference, ref),
                                         err_msg="clip_ is exact and in place")

    @_parametrize("scale", [8.0, 0.01])
    def test_clip_norm_(self, impl, reference, dtype, tol, rng, scale):
        """Above the limit the norm is scaled down to it and the norm before scaling is returned;
        within it the array is left exactly as it was."""
        host = self.round_to(dtype, rng.standard_normal(300) * scale)
        norm = float(numpy.sqrt(numpy.dot(host.astype(numpy.float64), host.astype(numpy.float64))))
        limit = 5.0
        dev = self.device(impl, host)
        returned = float(self.host(impl, impl.clip_norm_(dev, limit)))
        ref = self.device(reference, host)
        reference.clip_norm_(ref, limit)
        self.assert_close(returned, norm, tol, "clip_norm_: the norm before scaling")
        self.assert_close(self.host(impl, dev), self.host(reference, ref), tol, "clip_norm_")
        after = numpy.linalg.norm(self.host(impl, dev).astype(numpy.float64))
        assert after <= limit * (1 + 1e-5), f"clip_norm_ left a norm of {after} > {limit}"
        if norm <= limit:
            numpy.testing.assert_array_equal(self.host(impl, dev), host,
                                             err_msg="clip_norm_ changed a gradient within the limit")

    def test_dropout_mask(self, impl, dtype):
        """Only 0 and ``1 / (1 - p)``, in the backend's dtype, about ``p`` of them 0, and the
        same mask from two generators in the same state, so that a resumed run drops the units
        an uninterrupted one would."""
        p, shape = 0.25, (64, 4, 32)
        masks = [self.host(impl, impl.dropout_mask(numpy.random.default_rng(5), shape, p))
                 for _ in range(2)]
        mask = masks[0]
        assert mask.shape == shape and mask.dtype == numpy.dtype(dtype), (
            f"dropout_mask gave {mask.shape} {mask.dtype}, expected {shape} {dtype}")
        kept = numpy.dtype(dtype).type(1.0 / (1.0 - p))
        assert numpy.isin(mask, [0.0, kept]).all(), "dropout_mask holds values other than 0 and 1/(1-p)"
        dropped = float((mask == 0).mean())
        assert abs(dropped - p) < 0.03, f"dropout_mask dropped {dropped:.3f} of the units, not ~{p}"
        numpy.testing.assert_array_equal(masks[1], mask, err_msg=(
            "dropout_mask must follow from the generator's state alone (resumed runs repeat it)"))

    # -- the recurrences ---------------------------------------------------------------------

    def _recurrence_case(self, kind: str, T: int, B: int, dtype: str, rng: Any) -> Dict[str, Any]:
        """Host inputs for one recurrence, as a forward pass would leave them for backward."""
        m = self.hidden
        k = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
        case = {"Wh": self.round_to(dtype, rng.standard_normal((m, k * m)) * 0.5),
                "Z": self.round_to(dtype, rng.standard_normal((T, B, k * m))),
                "H0": self.round_to(dtype, rng.uniform(-0.5, 0.5, (B, m))),
                "C0": self.round_to(dtype, rng.uniform(-0.5, 0.5, (B, m))),
                "dH": self.round_to(dtype, rng.standard_normal((T, B, m)))}
        return case

    def _forward(self, be: Backend, kind: str, case: Dict[str, Any]) -> Dict[str, numpy.ndarray]:
        T, B, _ = case["Z"].shape
        m = self.hidden
        Wh, Z = self.device(be, case["Wh"]), self.device(be, case["Z"])
        H = self.device(be, numpy.concatenate([case["H0"][None], numpy.full((T, B, m), 99.0)]))
        out: Dict[str, Any] = {}
        if kind == "rnn":
            returned = be.rnn_forward(Wh, Z, H)
            out["returned H"] = self.host(be, returned)
        elif kind == "lstm":
            C = self.device(be, numpy.concatenate([case["C0"][None],
                                                   numpy.full((T, B, m), 99.0)]))
            be.lstm_forward(Wh, Z, H, C)
            out["C"] = self.host(be, C)
        else:
            RH = self.device(be, numpy.full((T, B, m), 99.0))
            be.gru_forward(Wh, Z, H, RH)
            out["RH"] = self.host(be, RH)
        out["H"] = self.host(be, H)
        out["Z"] = self.host(be, Z)
        out["Wh"] = self.host(be, Wh)
        return out

    @_parametrize("kind", ["rnn", "lstm", "gru"])
    @_parametrize("T", [1, 7])
    def test_recurrence_forward(self, impl, reference, dtype, tol, rng, batch, T, kind):
        """Each forward recurrence at ``T`` 1 and 7, from a non-zero incoming state, into outputs
        filled with 99.0 first (stale data): the states (and the activated gates) as the
        reference writes them; the weights, and ``rnn_forward``'s ``A``, unchanged."""
        case = self._recurrence_case(kind, T, batch, dtype, rng)
        expected, got = self._forward(reference, kind, case), self._forward(impl, kind, case)
        for key, value in expected.items():
            if kind != "rnn" or key != "Z":
                self.assert_close(got[key], value, tol, f"{kind}_forward (T={T}, B={batch}): {key}")
        if kind == "rnn":
            numpy.testing.assert_array_equal(got["Z"], case["Z"].astype(dtype),
                                             err_msg="rnn_forward changed A")
        numpy.testing.assert_array_equal(got["Wh"], case["Wh"].astype(dtype),
                                         err_msg=f"{kind}_forward changed the weights")

    @_parametrize("kind", ["rnn", "lstm", "gru"])
    @_parametrize("T", [1, 7])
    def test_recurrence_backward(self, impl, reference, dtype, tol, rng, batch, T, kind):
        """Each backward recurrence from what the reference's forward pass left, into outputs
        filled with 99.0: the gradient at the pre-activations as the reference's, and ``dH``
        unchanged. At ``T`` 1 no gradient flows between steps, so only ``T`` 7 checks the
        recurrent term."""
        case = self._recurrence_case(kind, T, batch, dtype, rng)
        # What the forward pass leaves (computed by the reference, rounded to the tested dtype).
        fwd = {k: self.round_to(dtype, v) for k, v in self._forward(reference, kind, case).items()}
        m, k = self.hidden, case["Wh"].shape[1] // self.hidden

        def run(be):
            Wh, dH = self.device(be, case["Wh"]), self.device(be, case["dH"])
            d_out = self.device(be, numpy.full((T, batch, k * m), 99.0))
            if kind == "rnn":
                returned = be.rnn_backward(Wh, self.device(be, fwd["H"]), dH, d_out)
                extra = {"returned dA": self.host(be, returned)}
            elif kind == "lstm":
                be.lstm_backward(Wh, self.device(be, fwd["Z"]), self.device(be, fwd["C"]), dH, d_out)
                extra = {}
            else:
                be.gru_backward(Wh, self.device(be, fwd["Z"]), self.device(be, fwd["H"]),
                                self.device(be, fwd["RH"]), dH, d_out)
                extra = {}
            return {"gradient": self.host(be, d_out), **extra, "dH": self.host(be, dH)}

        expected, got = run(reference), run(impl)
        for key in expected:
            if key != "dH":
                self.assert_close(got[key], expected[key], tol,
                                  f"{kind}_backward (T={T}, B={batch}): {key}")
        numpy.testing.assert_array_equal(got["dH"], case["dH"].astype(dtype),
                                         err_msg=f"{kind}_backward changed dH")

    # -- the optimizers' fused operations ------------------------------------------------------

    @_parametrize("op", ["sgd_", "adagrad_", "rmsprop_", "adam_"])
    @_parametrize("clip", [5.0, 0.0], ids=["clip", "noclip"])
    def test_optimizer_op(self, impl, reference, dtype, tol, rng, op, clip):
        """Each fused optimizer operation over three updates, with a clip of 5 and without,
        from gradients with entries beyond the clip and entries of 1e-3 scale: the parameters
        and every state array as the reference's."""
        n = 40
        param = self.round_to(dtype, rng.standard_normal(n))
        state = [self.round_to(dtype, rng.standard_normal(n) ** 2) for _ in range(2)]
        grads = [self.round_to(dtype, rng.standard_normal(n) * s) for s in (1.0, 1e-3, 3.0)]
        grads[0][:4] = [7.5, -6.0, 5.0, -40.0]  # beyond the clip
        grads[1][4:7] = 0.0

        def run(be):
            p = self.device(be, param)
            st = [self.device(be, s) for s in state]
            scratch = be.zeros(n)
            for step, g in enumerate(grads, start=1):
                g_dev = self.device(be, g)
                if op == "sgd_":
                    be.sgd_(p, g_dev, 0.1, clip)
                elif op == "adagrad_":
                    be.adagrad_(p, g_dev, st[0], 0.1, 1e-8, clip, scratch)
                elif op == "rmsprop_":
                    be.rmsprop_(p, g_dev, st[0], 0.01, 0.95, 1e-8, clip, scratch)
                else:
                    be.adam_(p, g_dev, st[0], st[1], 0.01, 0.9, 0.999, 1e-8, step, clip, scratch)
            return [self.host(be, p)] + [self.host(be, s) for s in st]

        expected, got = run(reference), run(impl)
        what = f"{op} ({'clip 5' if clip else 'no clip'}), three updates"
        self.assert_close(got[0], expected[0], tol, f"{what}: param")
        for i, (a, b) in enumerate(zip(got[1:], expected[1:])):
            self.assert_close(a, b, tol, f"{what}: state array {i}")


# -- every registered model ------------------------------------------------------------------

class ModelConformance(ConformanceFixtures):
    """Each registered model's passes on the backend against the same model on the reference.

    Models call the backend's array module directly, so these cases also check that ``xp``
    shares NumPy's in-place semantics (``out=`` arguments, views into one flat array).
    """

    @_parametrize("layers", [1, 2])
    def test_loss_and_grads(self, impl, reference, dtype, tol, model_name, batch, layers):
        """The loss, every gradient and the state after the sequence, as the same model computes
        them on the reference; the same loss again on the buffers the first call allocated
        (which hold stale data); ``loss()`` agreeing; and the incoming state left unchanged."""
        cls = self.model_class(model_name)
        K, T = self.vocab_size, self.seq_length
        params = self.host_params(cls, K, dtype, seed=3, layers=layers)
        x, y = self.sequences(K, T, batch, seed=4)
        what = f"{model_name}, {layers} layer(s), B={batch}"

        def run(be):
            model = self.make_model(be, cls, K, params, layers)
            state_host = self.host_state(model, batch, dtype, seed=5)
            state = tuple(self.device(be, s) for s in state_host)
            xd, yd = be.asarray(x), be.asarray(y)
            loss, new_state = model.loss_and_grads(xd, yd, state)
            out = {"loss": be.to_float(loss), **model.get_grads()}
            out.update({f"state[{i}] after": self.host(be, s) for i, s in enumerate(new_state)})
            # Again, on the buffers the first call allocated; and the loss alone.
            loss2, _ = model.loss_and_grads(xd, yd, state)
            out["loss again"] = be.to_float(loss2)
            out["loss only"], only_state = model.loss(xd, yd, state)
            out.update({f"state[{i}] from loss": self.host(be, s) for i, s in enumerate(only_state)})
            unchanged = [numpy.array_equal(self.host(be, s), h) for s, h in zip(state, state_host)]
            return out, unchanged

        expected, _ = run(reference)
        got, unchanged = run(impl)
        assert all(unchanged), f"loss_and_grads modified the incoming state ({what})"
        for key, value in expected.items():
            self.assert_close(got[key], value, tol, f"loss_and_grads, {what}: {key}")

    @_parametrize("layers", [1, 2])
    def test_step(self, impl, reference, dtype, tol, model_name, layers):
        """Two steps of generation from a non-zero state: the logits of each and the state after,
        as on the reference."""
        cls = self.model_class(model_name)
        K = self.vocab_size
        params = self.host_params(cls, K, dtype, seed=5, layers=layers)

        def run(be):
            model = self.make_model(be, cls, K, params, layers)
            state = tuple(self.device(be, s) for s in self.host_state(model, 2, dtype, seed=6))
            state, logits = model.step(state, be.asarray(numpy.array([4, 11])))
            state, logits2 = model.step(state, be.asarray(numpy.array([0, 12])))
            return [self.host(be, logits), self.host(be, logits2)] + \
                [self.host(be, s) for s in state]

        for i, (a, b) in enumerate(zip(run(impl), run(reference))):
            name = ("logits", "logits of the second step")[i] if i < 2 else f"state[{i - 2}]"
            self.assert_close(a, b, tol, f"step ({model_name}): {name}")

    def test_step_agrees_with_loss(self, impl, dtype, tol, model_name, batch):
        """Generation and training compute the same model: stepping through a sequence gives the
        loss that :meth:`~charrnn.model.Model.loss` gives, and the same final state."""
        cls = self.model_class(model_name)
        K, T = self.vocab_size, self.seq_length
        params = self.host_params(cls, K, dtype, seed=15)
        x, y = self.sequences(K, T, batch, seed=16)
        model = self.make_model(impl, cls, K, params)
        state = tuple(self.device(impl, s) for s in self.host_state(model, batch, dtype, 17))
        expected, expected_state = model.loss(impl.asarray(x), impl.asarray(y), state)
        total, current = 0.0, state
        for t in range(T):
            current, logits = model.step(current, impl.asarray(x[t].astype(numpy.int64)))
            z = self.host(impl, logits).astype(numpy.float64)
            z -= z.max(axis=1, keepdims=True)
            logp = z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))
            total -= logp[numpy.arange(batch), y[t]].sum() / batch
        self.assert_close(total, expected, tol, f"{model_name}: loss from step() against loss()")
        for i, (a, b) in enumerate(zip(current, expected_state)):
            self.assert_close(self.host(impl, a), self.host(impl, b), tol,
                              f"{model_name}: state[{i}] after step() against after loss()")

    @requires("float64")
    @_parametrize("layers", [1, 2])
    def test_gradient_check(self, backend_class, model_name, batch, layers):
        """Analytic gradients against centred differences, under the backend alone."""
        be = backend_class(dtype="float64")
        cls = self.model_class(model_name)
        K, T = self.vocab_size, self.seq_length
        params = self.host_params(cls, K, "float64", seed=8, layers=layers)
        x, y = self.sequences(K, T, batch, seed=9)
        model = self.make_model(be, cls, K, params, layers)
        state = tuple(self.device(be, s) for s in self.host_state(model, batch, "float64", 10))
        xd, yd = be.asarray(x), be.asarray(y)
        model.loss_and_grads(xd, yd, state)
        analytic = model.get_grads()

        rng = numpy.random.default_rng(10)
        host, step, bad = model.get_params(), self.gradcheck_step, []
        for name in model.shapes:
            g = analytic[name].reshape(-1)
            picks = set(numpy.argsort(-numpy.abs(g))[:3].tolist())  # the largest ...
            picks |= set(rng.choice(g.size, size=min(3, g.size), replace=False).tolist())  # ... and any
            for flat_index in sorted(picks):
                idx = numpy.unravel_index(flat_index, host[name].shape)
                original = host[name][idx]
                host[name][idx] = original + step
                model.set_params(host)
                plus = model.loss(xd, yd, state)[0]
                host[name][idx] = original - step
                model.set_params(host)
                minus = model.loss(xd, yd, state)[0]
                host[name][idx] = original
                numerical = (plus - minus) / (2 * step)
                a = float(analytic[name][idx])
                if abs(a - numerical) > self.gradcheck_atol + self.gradcheck_rtol * abs(numerical):
                    bad.append(f"d{name}{tuple(int(i) for i in idx)}: analytic {a:.10g}, "
                               f"centred difference {numerical:.10g}")
        model.set_params(host)
        assert not bad, (f"gradient check ({model_name}, {layers} layer(s), B={batch}) failed "
                         f"for {len(bad)} entries: " + "; ".join(bad[:8]))


# -- every registered optimizer ----------------------------------------------------------------

class OptimizerConformance(ConformanceFixtures):
    """Each registered optimizer's updates and state on the backend, against the reference.

    An optimizer plugin author can run these alone, on the NumPy backend, for their own
    optimizers: ``backend = "numpy"`` and ``optimizers = ["mine"]``.
    """

    def test_optimizer_steps(self, impl, reference, dtype, tol, rng, optimizer_name):
        """Three updates with a clip, of a flat array laid out as a model's (a dense part, then the
        rows of a table of which two are touched), with and without a
        :class:`~charrnn.params.GradientSupport` naming the touched rows: both as the reference's
        update without it. An optimizer that is not ``sparse_safe`` must ignore the hint."""
        cls = self.optimizer_class(optimizer_name)
        rows, width, dense = 6, 4, 10
        size = dense + rows * width
        start = self.round_to(dtype, rng.standard_normal(size))
        grads = [self.round_to(dtype, rng.standard_normal(size) * 3.0) for _ in range(3)]
        touched = numpy.array([1, 4])
        for g in grads:  # the untouched rows of the last block are zero, as a model leaves them
            g[dense:].reshape(rows, width)[[0, 2, 3, 5]] = 0.0

        def run(be, sparse):
            from .params import GradientSupport

            opt = cls(be, size, eta=self.eta, clip=self.clip)
            param = self.device(be, start)
            for g in grads:
                support = GradientSupport(dense, width, be.asarray(touched)) if sparse else None
                opt.step(param, self.device(be, g), support)
            return self.host(be, param)

        expected = run(reference, False)
        self.assert_close(run(impl, False), expected, tol, f"{optimizer_name}: three updates")
        self.assert_close(run(impl, True), expected, tol,
                          f"{optimizer_name}: three updates given the rows a sequence touched")

    def test_optimizer_state_round_trip(self, impl, reference, dtype, tol, rng, optimizer_name):
        """``state_dict()`` after two updates holds host NumPy copies that do not change as
        training goes on; a fresh optimizer, built with another ``eta``, that loads it continues
        exactly as the original does, and as the same optimizer on the reference."""
        cls = self.optimizer_class(optimizer_name)
        size = 30
        start = self.round_to(dtype, rng.standard_normal(size))
        grads = [self.round_to(dtype, rng.standard_normal(size)) for _ in range(4)]

        opt = cls(impl, size, eta=self.eta, clip=self.clip)
        param = self.device(impl, start)
        for g in grads[:2]:
            opt.step(param, self.device(impl, g))
        state = opt.state_dict()
        snapshot = {}
        for key, value in state.items():
            if hasattr(value, "shape"):
                assert isinstance(value, numpy.ndarray), (
                    f"{optimizer_name} state_dict()[{key!r}] is a {type(value).__name__}, not a "
                    "host numpy.ndarray")
                snapshot[key] = value.copy()
        midway = self.host(impl, param).copy()

        fresh = cls(impl, size, eta=self.eta * 7, clip=self.clip)  # load_state_dict restores eta
        fresh.load_state_dict(state)
        param2 = self.device(impl, midway)
        ref_opt = cls(reference, size, eta=self.eta * 7, clip=self.clip)
        ref_opt.load_state_dict(state)
        param_ref = self.device(reference, midway)
        for g in grads[2:]:
            opt.step(param, self.device(impl, g))
            fresh.step(param2, self.device(impl, g))
            ref_opt.step(param_ref, self.device(reference, g))
        for key, value in snapshot.items():
            numpy.testing.assert_array_equal(state[key], value, err_msg=(
                f"{optimizer_name} state_dict()[{key!r}] changed as training went on: it aliases "
                "the optimizer's live state instead of being a copy"))
        self.assert_close(self.host(impl, param2), self.host(impl, param), tol,
                          f"{optimizer_name}: a fresh optimizer loaded from state_dict continues "
                          "identically")
        self.assert_close(self.host(impl, param), self.host(reference, param_ref), tol,
                          f"{optimizer_name}: continuing from the same state as NumPy")


# -- training, checkpoints and sampling ----------------------------------------------------------

class TrainingConformance(ConformanceFixtures):
    """Trainer updates, checkpoints across backends and seeded sampling, for every model.

    The trainer runs with AdaGrad and Adam only: each registered optimizer is checked on its own
    by :class:`OptimizerConformance`.
    """

    @_parametrize("optimizer", ["adagrad", "adam"])
    def test_train_steps(self, impl, reference, dtype, training_tol, model_name, optimizer):
        """Five trainer updates at batch 2 with AdaGrad and with Adam, across an epoch boundary:
        the losses, the smooth loss, the position in the text, the state and the parameters as
        on the reference, within :attr:`training_tolerances`."""
        corpus = self.corpus()
        cls = self.model_class(model_name)
        params = self.host_params(cls, corpus.vocab_size, dtype, seed=7, sigma=0.1)
        batch = 2  # 20-character stripes: the second update wraps

        def run(be):
            trainer = self.make_trainer(be, model_name, params, corpus, optimizer, batch)
            losses = self.steps(trainer, self.train_updates)
            out = {"losses": losses, "smooth loss": trainer.smooth_loss_value(),
                   "epoch": trainer.epoch, "position": trainer.stream.position,
                   **trainer.model.get_params()}
            out.update({f"state[{i}]": self.host(be, s) for i, s in enumerate(trainer.state)})
            return out

        expected, got = run(reference), run(impl)
        assert (got["epoch"], got["position"]) == (expected["epoch"], expected["position"])
        for key, value in expected.items():
            if key not in ("epoch", "position"):
                self.assert_close(got[key], value, training_tol,
                                  f"{self.train_updates} {optimizer} updates of {model_name}: {key}")

    @_parametrize("writer", ["backend", "numpy"])
    def test_checkpoint_portability(self, backend_class, impl, dtype, training_tol, tmp_path,
                                    model_name, writer):
        """A checkpoint written on one backend resumes on the other with the same losses."""
        from .checkpoint import load_checkpoint, save_checkpoint

        corpus = self.corpus()
        cls = self.model_class(model_name)
        params = self.host_params(cls, corpus.vocab_size, dtype, seed=11, sigma=0.1)
        other_params = self.host_params(cls, corpus.vocab_size, dtype, seed=12, sigma=0.1)
        numpy_be = Backend(dtype=dtype)
        writer_be = impl if writer == "backend" else numpy_be

        first = self.make_trainer(writer_be, model_name, params, corpus, "adam", batch=2)
        self.steps(first, 3)
        path = os.path.join(str(tmp_path), "latest.npz")
        save_checkpoint(path, first.checkpoint())
        ckpt = load_checkpoint(path)
        assert ckpt.meta["backend"] == writer_be.name and ckpt.meta["dtype"] == dtype
        assert ckpt.model_name == model_name
        # Uninterrupted, the writer goes on (across the epoch boundary) ...
        expected = self.steps(first, 3)
        expected_params = first.model.get_params()

        # ... and so do a NumPy trainer and a trainer on the backend resumed from the file.
        for label, be in (("numpy", numpy_be), (backend_class.name, backend_class(dtype=dtype))):
            resumed = self.make_trainer(be, model_name, other_params, corpus, "adam", batch=2)
            resumed.restore(load_checkpoint(path))
            losses = self.steps(resumed, 3)
            what = f"{model_name} written by {writer_be.name}, resumed on {label}"
            self.assert_close(losses, expected, training_tol, f"checkpoint {what}: losses")
            for name, value in resumed.model.get_params().items():
                self.assert_close(value, expected_params[name], training_tol,
                                  f"checkpoint {what}: {name}")

    def test_sample_ids(self, impl, reference, dtype, model_name):
        """Seeded sampling, plain and with a temperature and top-k: valid ids, the same ids again
        from the same seed, the state passed in unchanged, and in float64 the reference's ids."""
        from .sampling import sample_ids

        cls = self.model_class(model_name)
        K = self.vocab_size
        params = self.host_params(cls, K, dtype, seed=13, sigma=0.5)

        def run(be, **kwargs):
            model = self.make_model(be, cls, K, params)
            host_state = self.host_state(model, 1, dtype, seed=14)
            state = tuple(self.device(be, s) for s in host_state)
            ids = sample_ids(model, state, 2, self.sample_length,
                             rng=numpy.random.default_rng(1234), **kwargs)
            for s, h in zip(state, host_state):
                numpy.testing.assert_array_equal(self.host(be, s), h.astype(dtype),
                                                 err_msg="sample_ids modified the state")
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


class BackendConformance(OperationsConformance, ModelConformance, OptimizerConformance,
                         TrainingConformance):
    """The whole suite: subclass it and set :attr:`backend`."""
