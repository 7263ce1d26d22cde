"""The array backend interface, in the style of thinc's ``Ops``.

Every operation is written once against ``self.xp`` (NumPy's API, which CuPy mirrors). A backend
sets ``xp`` and overrides only what must differ on its device: a scatter-add, a fused recurrence
kernel, a fused optimizer update. The model's forward and backward pass is written once, against
these operations, in :mod:`charrnn.model`.

Arrays passed to and returned from these methods live on the backend's device. Host data enters
through :meth:`asarray` and leaves through :meth:`to_numpy`; nothing else crosses.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, Sequence

import numpy

Array = Any  # an ndarray of the backend's array module


class Backend:
    """Base class for array backends.

    Subclasses set :attr:`name` (what ``--backend`` takes) and :attr:`xp`. Capability flags in
    :attr:`capabilities` let a backend declare what it does not support (for example
    ``{"float64": False}``); the conformance suite skips those cases instead of failing them.
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
        """Raise :class:`charrnn.errors.BackendUnavailable` with a fix when this cannot run."""

    @classmethod
    def supports(cls, capability: str) -> bool:
        return cls.capabilities.get(capability, True)

    @classmethod
    def describe(cls) -> str:
        """One line on the device this backend computes on, for logs and reports."""
        return cls.name

    # -- moving data -------------------------------------------------------------------------

    def asarray(self, data: Any, dtype: Any = None) -> Array:
        return self.xp.asarray(data, dtype=dtype)

    def to_numpy(self, array: Array) -> numpy.ndarray:
        return numpy.asarray(array)

    def to_float(self, scalar: Any) -> float:
        """A device scalar to a Python float: the one place a loss reaches the host."""
        return float(scalar)

    def zeros(self, shape: Sequence[int] | int, dtype: Any = None) -> Array:
        return self.xp.zeros(shape, dtype=self.dtype if dtype is None else dtype)

    def synchronize(self) -> None:
        """Wait for queued device work, so that timings mean something."""

    # -- the operations the model is written against ------------------------------------------

    def rnn_forward(self, W: Array, A_in: Array, H: Array, tmp: Array) -> Array:
        """The recurrence ``H[t+1] = tanh(W @ H[t] + A_in[t])``; ``H[0]`` holds the incoming state.

        ``A_in`` (T, m) already holds the input projection and bias. ``H`` (T+1, m) is written in
        place from row 1; ``tmp`` (m,) is scratch. Only this loop and its backward twin step
        through time.
        """
        # Iterating rows and passing ``out`` positionally keeps the per-step Python overhead low:
        # at m=100 each step's arithmetic costs about as much as the calls that launch it.
        dot, add, tanh = self.xp.dot, self.xp.add, self.xp.tanh
        for a_t, h_prev, h_t in zip(A_in, H[:-1], H[1:]):
            dot(W, h_prev, tmp)
            add(tmp, a_t, h_t)
            tanh(h_t, h_t)
        return H

    def rnn_backward(self, W: Array, D: Array, dH: Array, dA: Array, tmp: Array) -> Array:
        """Back-propagate through the recurrence.

        ``D`` (T, m) is ``1 - H**2``; ``dH`` (T, m) the loss gradient reaching each hidden state
        from the output layer. Writes and returns ``dA`` (T, m), the gradient at each
        pre-activation: ``dA[t] = (dH[t] + W.T @ dA[t+1]) * D[t]``.
        """
        dot, add, multiply = self.xp.dot, self.xp.add, self.xp.multiply
        T = dH.shape[0]
        multiply(dH[T - 1], D[T - 1], dA[T - 1])
        for t in range(T - 2, -1, -1):
            dot(dA[t + 1], W, tmp)
            add(tmp, dH[t], tmp)
            multiply(tmp, D[t], dA[t])
        return dA

    def softmax(self, O: Array, axis: int = -1) -> Array:
        """Softmax along ``axis``, stable against overflow; overwrites and returns ``O``."""
        xp = self.xp
        O -= O.max(axis=axis, keepdims=True)
        xp.exp(O, out=O)
        O /= O.sum(axis=axis, keepdims=True)
        return O

    def segment_sum(self, ids: Array, values: Array, out: Array) -> Array | None:
        """``out[k] = sum of values[t] where ids[t] == k``; rows of ``out`` no id names are zero.

        This is the gradient of a row gather (the input projection ``U[:, x]``). A backend that
        learns the distinct ids cheaply along the way returns them, sorted, so optimizers can
        skip the rows that stayed zero; one that would need a device-to-host sync to know them
        returns None.
        """
        out[...] = 0
        self.xp.add.at(out, ids, values)
        return None

    def clip_(self, x: Array, lo: float, hi: float) -> None:
        self.xp.clip(x, lo, hi, out=x)

    def sgd_(self, param: Array, grad: Array, eta: float) -> None:
        """``param -= eta * grad`` in place."""
        param -= eta * grad

    def adagrad_(self, param: Array, grad: Array, mem: Array, eta: float, eps: float,
                 scratch: Array) -> None:
        """AdaGrad in place: ``mem += grad**2; param -= eta * grad / sqrt(mem + eps)``.

        ``scratch`` has ``param``'s shape; reusing it avoids allocating (and, for large arrays,
        page-faulting in) fresh temporaries every update.
        """
        xp = self.xp
        xp.multiply(grad, grad, scratch)
        xp.add(mem, scratch, mem)
        xp.add(mem, eps, scratch)
        xp.sqrt(scratch, scratch)
        xp.divide(grad, scratch, scratch)
        xp.multiply(scratch, eta, scratch)
        xp.subtract(param, scratch, param)
