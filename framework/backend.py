"""The array backend interface, in the style of thinc's ``Ops``.

Every operation is written once against ``self.xp`` (NumPy's API, which CuPy mirrors). A backend
sets ``xp`` and overrides only what must differ on its device or what it can do faster: a
scatter-add, a fused recurrence kernel, a fused optimizer update. The base class is also the
reference the conformance suite checks every backend against, so its code is kept plain.

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

from typing import Any, ClassVar, Dict, Sequence

import numpy

from .recurrent_ops import RecurrentOps

Array = Any  # an ndarray of the backend's array module


class Backend(RecurrentOps):
    """Base class for array backends, and, with :attr:`xp` left at NumPy, the reference the
    conformance suite checks every backend against.

    Subclasses set :attr:`name` (what ``--backend`` takes) and :attr:`xp`. Capability flags in
    :attr:`capabilities` let a backend declare what it does not support (for example
    ``{"float64": False}``); the conformance suite skips those cases instead of failing them.

    The recurrences of the built-in models (:meth:`rnn_forward`, :meth:`lstm_backward`, ...) come
    from :class:`charrnn.recurrent_ops.RecurrentOps`.

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

    def __init__(self, dtype: str = "float64") -> None:
        self.check_available()
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

    # -- optimizer updates: clipping and the update are one operation per flat array ------------
    #
    # Each takes the model's flat gradient array, clips it elementwise to [-clip, clip] in place
    # (clip 0 leaves it alone: the array is the model's gradient buffer, rewritten every update),
    # then updates ``param`` and the optimizer's state in place. ``scratch`` has ``param``'s shape
    # and arrives holding stale data (the optimizer reuses it every update): write it before
    # reading it. A backend fuses each into one kernel where it can.

    def _clip_grad(self, grad: Array, clip: float) -> None:
        if clip:
            self.clip_(grad, -clip, clip)

    def sgd_(self, param: Array, grad: Array, eta: float, clip: float = 0.0) -> None:
        """``param -= eta * clip(grad)``."""
        self._clip_grad(grad, clip)
        param -= eta * grad

    def adagrad_(self, param: Array, grad: Array, mem: Array, eta: float, eps: float,
                 clip: float, scratch: Array) -> None:
        """AdaGrad: ``g = clip(grad); mem += g**2; param -= eta * g / sqrt(mem + eps)``.

        ``scratch`` arrives holding the previous update's values; it is written before it is read.
        """
        xp = self.xp
        self._clip_grad(grad, clip)
        xp.multiply(grad, grad, scratch)
        xp.add(mem, scratch, mem)
        xp.add(mem, eps, scratch)
        xp.sqrt(scratch, scratch)
        xp.divide(grad, scratch, scratch)
        xp.multiply(scratch, eta, scratch)
        xp.subtract(param, scratch, param)

    def rmsprop_(self, param: Array, grad: Array, ms: Array, eta: float, decay: float,
                 eps: float, clip: float, scratch: Array) -> None:
        """RMSProp as char-rnn's ``optim.rmsprop``:
        ``g = clip(grad); ms = decay * ms + (1 - decay) * g**2; param -= eta * g / (sqrt(ms) + eps)``.

        ``scratch`` arrives holding the previous update's values; it is written before it is read.
        """
        xp = self.xp
        self._clip_grad(grad, clip)
        xp.multiply(grad, grad, scratch)
        scratch *= 1.0 - decay
        ms *= decay
        ms += scratch
        xp.sqrt(ms, scratch)
        scratch += eps
        xp.divide(grad, scratch, scratch)
        scratch *= eta
        param -= scratch

    def adam_(self, param: Array, grad: Array, m: Array, v: Array, eta: float, beta1: float,
              beta2: float, eps: float, step: int, clip: float, scratch: Array) -> None:
        """Adam with bias correction, as ``torch.optim.Adam``; ``step`` counts from 1.

        ``g = clip(grad); m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g**2;
        param -= eta * (m / (1 - b1**step)) / (sqrt(v / (1 - b2**step)) + eps)``.

        ``scratch`` arrives holding the previous update's values; it is written before it is read.
        """
        xp = self.xp
        self._clip_grad(grad, clip)
        m *= beta1
        xp.multiply(grad, 1.0 - beta1, scratch)
        m += scratch
        v *= beta2
        xp.multiply(grad, grad, scratch)
        scratch *= 1.0 - beta2
        v += scratch
        correction1 = 1.0 - beta1 ** step
        correction2 = 1.0 - beta2 ** step
        xp.sqrt(v, scratch)
        scratch *= 1.0 / correction2 ** 0.5
        scratch += eps
        xp.divide(m, scratch, scratch)
        scratch *= eta / correction1
        param -= scratch
