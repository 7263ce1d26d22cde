"""What every area of the conformance suite shares: the backend under test and the NumPy
reference, registered models and optimizers, capabilities, tolerances and inputs."""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence

import numpy

try:
    import pytest
except ImportError:  # run_conformance says how to install it; this module still imports
    pytest = None  # type: ignore[assignment]

from ..backend import Backend
from ..errors import BackendUnavailable, CharrnnError

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
        from ..registry import get_registry

        registry = get_registry()
        if spec in registry.names("backend"):
            return registry.get("backend", spec)
        available = ", ".join(registry.names("backend")) or "none"
        failed = "; ".join(f"{p.name}: {p.error}" for p in registry.failures)
        raise LookupError(f"no backend is registered as {spec!r}; available: {available}"
                          + (f" (plugins that failed to load: {failed})" if failed else ""))
    raise TypeError(f"backend must be a Backend subclass or a registered backend name, not {spec!r}")


def _registered(kind: str) -> List[str]:
    from ..registry import get_registry

    return get_registry().names(kind)


def _registered_class(kind: str, name: str) -> type:
    from ..registry import get_registry

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
        from ..data import Corpus

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
                   params: Dict[str, numpy.ndarray], layers: int = 1,
                   dropout: float = 0.0) -> Any:
        """The model under test. A model may refuse an option (a model without layers refuses a
        stack, one without dropout refuses it): the case is then skipped with its reason."""
        try:
            if dropout:
                return model_cls(be, vocab_size, hidden=self.hidden, layers=layers,
                                 params=params, dropout=dropout)
            return model_cls(be, vocab_size, hidden=self.hidden, layers=layers, params=params)
        except (CharrnnError, TypeError) as exc:
            if layers == 1 and not dropout:
                raise
            pytest.skip(f"the {model_cls.name} model refuses {layers} layers"
                        f"{f' with dropout {dropout}' if dropout else ''}: {exc}")

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
        from ..assembly import build_trainer
        from ..run_config import RunConfig

        config = RunConfig(model=model_name, hidden=self.hidden, seq_length=self.seq_length,
                           optimizer=optimizer, batch_size=batch, eta=self.eta, clip=self.clip,
                           dtype=be.dtype.name, iterations=1000)
        trainer = build_trainer(config, corpus=corpus, backend=be, plugins=False)
        trainer.model.set_params(params)
        return trainer

    def steps(self, trainer: Any, n: int) -> List[float]:
        return [trainer.backend.to_float(trainer.train_step()) for _ in range(n)]


# -- the backend's operations, one by one -------------------------------------------------------
