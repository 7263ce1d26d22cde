"""The array backend interface, in the style of thinc's ``Ops``: the array basics.

A backend provides placement (:meth:`asarray`, :meth:`to_numpy`, :meth:`to_float`), allocation
(:meth:`zeros`), softmax, segment sums, clipping, random masks and synchronisation, each written
once here against ``self.xp`` (NumPy's API, which CuPy mirrors); a backend sets ``xp`` and
overrides only what must differ on its device or what it can do faster. The base class is also
the reference the conformance suite checks every backend against, so its code is kept plain.

Everything heavier (a recurrence, an optimizer's update) is an operation with a kernel per
backend (:mod:`charrnn.kernels`), found by :meth:`Backend.kernel`.

Arrays passed to and returned from these methods live on the backend's device. Host data enters
through :meth:`asarray` and leaves through :meth:`to_numpy`; nothing else crosses.

Shapes follow one convention: time first, then batch, then features, ``(T, B, ·)``, as thinc's
``(nL, nB, nO)``. A sequence operation sees the whole sequence at once, so a backend can replace
it with one kernel (thinc's ``Ops.lstm_forward_training`` and ``Ops.backprop_lstm`` are the
model).

Operations keep nothing between calls that could change their results, and never assume anything
about the contents of an output array on entry: models and optimizers reuse their buffers from
one update to the next, so an output (and an optimizer's ``scratch``) arrives holding stale data.
Every element an operation is documented to write is written, and nothing is read before it is.

The backend is never told the model's sizes: the vocabulary size ``K`` (the input dimension of
the first layer), the hidden size and the batch all come from the shapes of the arrays the model
passes. Models also use :attr:`Backend.xp` directly, relying on NumPy's in-place semantics:
``out=`` arguments, in-place operators, and parameters and gradients that are views into one
flat array each (:class:`charrnn.params.FlatParams`).
"""
from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, ClassVar, Dict, Sequence, Tuple

import numpy

from .kernels import LEGACY_METHODS, Operation, forced_reference, legacy_overrides

Array = Any  # an ndarray of the backend's array module

class Backend:
    """Base class for array backends, and, with :attr:`xp` left at NumPy, the reference the
    conformance suite checks every backend against.

    Subclasses set :attr:`name` (what ``--backend`` takes) and :attr:`xp`. Capability flags in
    :attr:`capabilities` let a backend declare what it does not support (for example
    ``{"float64": False}``); the conformance suite skips those cases instead of failing them.

    The recurrences of the models and the optimizers' updates are operations, each run by
    :meth:`kernel`: the kernel a plugin registered for this backend (or one it derives from),
    or else the operation's reference.

    Built as ``MyBackend(dtype="float64")``: ``__init__`` calls :meth:`check_available` first,
    so a backend that cannot run here refuses before allocating anything, and refuses a dtype
    that is not floating point.

    Every operation writes all it is documented to write and reads no output before writing it:
    outputs, and the optimizers' ``scratch`` arrays, arrive holding whatever the previous update
    left in them. Sizes (the vocabulary, the hidden size, the batch) are never passed: an
    operation reads them off the shapes of its arguments, which the model chose.
    """

    name: ClassVar[str] = "base"
    xp: ClassVar[Any] = numpy
    capabilities: ClassVar[Dict[str, bool]] = {}
    #: Whether the arrays live in host memory, where reading a scalar (:meth:`to_float`) costs
    #: nothing. A device backend sets False: the trainer then checks the loss for divergence
    #: on the device and reads the result every hundred updates, not at every update.
    host_memory: ClassVar[bool] = True

    def __init__(self, dtype: str = "float64") -> None:
        self.check_available()
        #: Seconds spent compiling kernels (a JIT's first calls) for this backend object: the
        #: trainer leaves them out of training time, so ``--time-limit`` is spent on training.
        self.compile_seconds = 0.0
        self.dtype = numpy.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"dtype must be a floating type, got {dtype}")

    # -- availability and capabilities -------------------------------------------------------

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`charrnn.errors.BackendUnavailable` with a fix when this cannot run.

        The launcher prints the message as a one-line error, ``charrnn plugins`` shows it, and
        the conformance suite skips every case with it as the reason. Registration never calls
        it, so a backend whose library or device is missing is still listed.
        """

    @classmethod
    def supports(cls, capability: str) -> bool:
        """Whether :attr:`capabilities` leaves ``capability`` on: anything not declared is."""
        return cls.capabilities.get(capability, True)

    @classmethod
    def describe(cls) -> str:
        """One line on the device this backend computes on, for logs and reports."""
        return cls.name

    # -- kernels -----------------------------------------------------------------------------

    def kernel(self, operation: Operation) -> Callable[..., Any]:
        """The function that runs ``operation`` here, bound to this backend: call it with the
        operation's arguments. Looked up once per backend object."""
        cache = self.__dict__.setdefault("_kernels", {})
        found = cache.get(operation.name)
        if found is None:
            found = cache[operation.name] = self.resolve(operation)
        return found

    def resolve(self, operation: Operation, legacy: bool = True) -> Callable[..., Any]:
        """Where :meth:`kernel` finds ``operation``'s kernel: the backend's class and then the
        classes it derives from, each by its registered name (and, with ``legacy``, by a 0.5
        method it overrides); else the reference."""
        return self._lookup(operation, legacy)[0]

    def kernel_source(self, operation: Operation) -> str:
        """Who runs ``operation`` here, in words: the registered kernel's plugin, a 0.5
        override, or the reference."""
        return self._lookup(operation, True)[1]

    def _lookup(self, operation: Operation, legacy: bool) -> Tuple[Callable[..., Any], str]:
        forced = forced_reference()
        if operation.name in forced or "all" in forced:
            return (functools.partial(operation.reference, self),
                    "reference (by CHARRNN_REFERENCE_KERNELS)")
        from .registry import get_registry

        table = get_registry().kernels
        for cls in type(self).__mro__:
            if cls is Backend:
                break
            method = operation.legacy_method
            if legacy and method and method in vars(cls):  # a 0.5 backend's override
                return getattr(self, method), f"0.5 method {cls.__name__}.{method}"
            name = vars(cls).get("name")
            hit = table.get(operation.name, name) if isinstance(name, str) else None
            if hit is not None:
                return functools.partial(hit[0], self), f"kernel from {hit[1]}"
        return functools.partial(operation.reference, self), "reference"

    # -- moving data -------------------------------------------------------------------------

    def asarray(self, data: Any, dtype: Any = None) -> Array:
        """Host data (or a device array) on the device. With ``dtype`` None the data's own dtype
        is kept, so integer ids stay integers."""
        return self.xp.asarray(data, dtype=dtype)

    def to_numpy(self, array: Array) -> numpy.ndarray:
        """A device array, transposed views included, as a host ``numpy.ndarray``. It may share
        memory with ``array`` on the CPU: callers copy what they keep."""
        return numpy.asarray(array)

    def to_float(self, scalar: Any) -> float:
        """A device scalar to a Python float: the one place a loss reaches the host.

        It also accepts a Python or NumPy number: a resumed trainer's smooth loss is one until
        the next update.
        """
        return float(scalar)

    def zeros(self, shape: Sequence[int] | int, dtype: Any = None) -> Array:
        """Zeros of ``shape`` in the backend's dtype, or in ``dtype``: how models and optimizers
        allocate every buffer they reuse."""
        return self.xp.zeros(shape, dtype=self.dtype if dtype is None else dtype)

    def synchronize(self) -> None:
        """Wait for queued device work, so that timings mean something."""

    def dropout_mask(self, rng: numpy.random.Generator, shape: Sequence[int],
                     p: float) -> Array:
        """A mask of ``0`` (probability ``p``) and ``1 / (1 - p)`` (inverted dropout).

        Draws come from ``rng``, a host generator that the trainer saves in checkpoints, so a
        resumed run drops exactly the units an uninterrupted one would. A device backend may
        draw on the device instead, as long as the draws follow from ``rng`` alone (a seed taken
        from it, say).
        """
        keep = rng.random(tuple(shape)) >= p
        return self.asarray(keep * (1.0 / (1.0 - p)), dtype=self.dtype)

    # -- elementwise and reductions ----------------------------------------------------------

    def softmax(self, O: Array, axis: int = -1) -> Array:
        """Softmax along ``axis``, stable against overflow; overwrites and returns ``O``.

        The vanilla RNN calls it on ``(K, T*B)`` logits with ``axis=0``; the gated models, through
        :meth:`charrnn.model.Model.softmax_loss`, on ``(T*B, K)`` logits along the last axis.
        """
        xp = self.xp
        O -= O.max(axis=axis, keepdims=True)
        xp.exp(O, out=O)
        O /= O.sum(axis=axis, keepdims=True)
        return O

    def segment_sum(self, ids: Array, values: Array, out: Array) -> Array | None:
        """``out[k] = sum of values[i] where ids[i] == k``; rows of ``out`` no id names are zero.

        ``ids`` is one-dimensional, of any integer dtype, signed or not: a corpus stores ids as
        ``uint8`` (up to 256 characters), ``uint16`` (up to 65,536) or ``int32``, and models pass
        them on as they are, so ``int64`` must not be assumed. ``values`` is ``(len(ids), n)``
        and ``out`` ``(K, n)``, with ``K`` the model's vocabulary size, often a view into the
        flat gradient array: nothing outside it may be written. This is the gradient of a row
        lookup (an embedding table, the input projection of every built-in model). A backend
        that learns the distinct ids cheaply along the way returns them, sorted, so optimizers
        can skip the rows that stayed zero; one that would need a device-to-host sync to know
        them returns None.
        """
        out[...] = 0
        self.xp.add.at(out, ids, values)
        return None

    def clip_(self, x: Array, lo: float, hi: float) -> None:
        """Clip ``x`` to ``[lo, hi]`` in place; exactly, as clipping is (the suite compares it bit
        for bit)."""
        x.clip(lo, hi, out=x)

    def clip_norm_(self, x: Array, max_norm: float) -> Array:
        """Scale ``x`` in place so that its L2 norm is at most ``max_norm``, as
        ``torch.nn.utils.clip_grad_norm_`` does (factor ``max_norm / (norm + 1e-6)``, capped at 1).

        Returns the norm before scaling, on the device: the factor is computed there, so the
        operation costs no host round trip.
        """
        xp = self.xp
        norm = xp.sqrt(xp.dot(x, x))
        x *= xp.minimum(max_norm / (norm + 1e-6), 1.0)
        return norm

    # -- the 0.5 interface's heavy methods: deprecated, each runs its operation's kernel ------

    def _legacy(self, method: str, *args: Any) -> Any:
        from .registry import get_registry

        operation = LEGACY_METHODS[method]
        note = (f"Backend.{method} is deprecated (charrnn 0.5); call "
                f"backend.kernel(<the {operation!r} operation>) instead")
        registry = get_registry()
        # A 0.5 backend's own override calling up to here is told once, when it is registered.
        if note not in registry.deprecations and not legacy_overrides(type(self)):
            registry.deprecations.append(note)
            warnings.warn(note, FutureWarning, stacklevel=3)
        found = registry.items["operation"].get(operation)
        if found is None:
            raise NotImplementedError(f"no installed plugin defines the operation {operation!r}")
        return self.resolve(found.obj, legacy=False)(*args)

    def rnn_forward(self, Wh: Array, A: Array, H: Array) -> Array:
        """Deprecated (0.5): the ``rnn.forward`` operation's kernel; returns ``H``, as in 0.5."""
        self._legacy("rnn_forward", Wh, A, H)
        return H

    def rnn_backward(self, Wh: Array, H: Array, dH: Array, dA: Array) -> Array:
        """Deprecated (0.5): the ``rnn.backward`` operation's kernel; returns ``dA``, as in
        0.5."""
        self._legacy("rnn_backward", Wh, H, dH, dA)
        return dA

    def lstm_forward(self, Wh: Array, G: Array, H: Array, C: Array) -> None:
        """Deprecated (0.5): the ``lstm.forward`` operation's kernel."""
        return self._legacy("lstm_forward", Wh, G, H, C)

    def lstm_backward(self, Wh: Array, G: Array, C: Array, dH: Array, dG: Array) -> None:
        """Deprecated (0.5): the ``lstm.backward`` operation's kernel."""
        return self._legacy("lstm_backward", Wh, G, C, dH, dG)

    def gru_forward(self, Wh: Array, G: Array, H: Array, RH: Array) -> None:
        """Deprecated (0.5): the ``gru.forward`` operation's kernel."""
        return self._legacy("gru_forward", Wh, G, H, RH)

    def gru_backward(self, Wh: Array, G: Array, H: Array, RH: Array, dH: Array,
                     dG: Array) -> None:
        """Deprecated (0.5): the ``gru.backward`` operation's kernel."""
        return self._legacy("gru_backward", Wh, G, H, RH, dH, dG)

    def sgd_(self, param: Array, grad: Array, eta: float, clip: float = 0.0) -> None:
        """Deprecated (0.5): the ``sgd.update`` operation's kernel."""
        return self._legacy("sgd_", param, grad, eta, clip)

    def adagrad_(self, param: Array, grad: Array, mem: Array, eta: float, eps: float,
                 clip: float, scratch: Array) -> None:
        """Deprecated (0.5): the ``adagrad.update`` operation's kernel."""
        return self._legacy("adagrad_", param, grad, mem, eta, eps, clip, scratch)

    def rmsprop_(self, param: Array, grad: Array, ms: Array, eta: float, decay: float,
                 eps: float, clip: float, scratch: Array) -> None:
        """Deprecated (0.5): the ``rmsprop.update`` operation's kernel."""
        return self._legacy("rmsprop_", param, grad, ms, eta, decay, eps, clip, scratch)

    def adam_(self, param: Array, grad: Array, m: Array, v: Array, eta: float, beta1: float,
              beta2: float, eps: float, step: int, clip: float, scratch: Array) -> None:
        """Deprecated (0.5): the ``adam.update`` operation's kernel."""
        return self._legacy("adam_", param, grad, m, v, eta, beta1, beta2, eps, step, clip,
                            scratch)

    def sigmoid_(self, x: Array) -> Array:
        """``x = 1 / (1 + exp(-x))`` in place, as ``0.5 * tanh(0.5 x) + 0.5``, which cannot
        overflow."""
        xp = self.xp
        x *= 0.5
        xp.tanh(x, out=x)
        x *= 0.5
        x += 0.5
        return x

