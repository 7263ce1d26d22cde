"""Operations and their kernels: the heavy work of a model or an optimizer, one function per
(operation, backend).

An :class:`Operation` is defined by whoever needs it: a model plugin defines its recurrence's
forward and backward pass, an optimizer plugin its update. It ships a *reference*, written once
against the array interface (``be.xp``, NumPy's API, which CuPy mirrors), which runs on every
backend. Any plugin may then register a faster *kernel* for an operation on a backend, through
the ``register_kernels`` hook, as ``torch.library`` registers an operator's implementation per
device:

.. code-block:: python

    @hookimpl
    def register_kernels(register):
        register("lstm.forward", "numpy", my_lstm_forward)   # my_lstm_forward(be, Wh, G, H, C)

A kernel takes the backend first, then the operation's arguments, and must compute what the
reference computes (the conformance suite checks every registered pair against it). A model or
optimizer calls ``backend.kernel(OPERATION)(*args)``, which finds the kernel for the backend (or
for a backend class it derives from), or else the reference. ``CHARRNN_REFERENCE_KERNELS``, a
comma-separated list of operation names (or ``all``), forces the reference, to tell a suspect
kernel from the model.

Conventions, as thinc's ``Ops``: shapes are time first, then batch, then features, ``(T, B, ·)``;
outputs arrive holding stale data from the previous update and every element documented as
written is written, nothing read before; arguments not documented as written are left alone.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy

Kernel = Callable[..., Any]


class Sizes(NamedTuple):
    """The sizes a conformance case is drawn at: sequence length, batch, hidden size,
    vocabulary and the length of a flat array (an optimizer's view of every parameter)."""

    T: int = 7
    B: int = 3
    m: int = 16
    K: int = 11
    n: int = 300


@dataclass
class Case:
    """One call of an operation, on host arrays: ``args`` in order, which of them the operation
    writes (``written``, by index), and which are scratch space it may leave in any state;
    ``returns`` says whether its return value is an output to compare (not when it returns one
    of its arguments, or nothing)."""

    args: List[Any]
    written: Tuple[int, ...]
    scratch: Tuple[int, ...] = ()
    returns: bool = False


def stale(rng: numpy.random.Generator, shape: Sequence[int], dtype: Any) -> numpy.ndarray:
    """An output buffer as a kernel receives one: holding what a previous update left (large
    values and NaN), which a kernel that reads before writing turns into a wrong answer."""
    out = rng.standard_normal(tuple(shape)).astype(dtype) * 1e3
    out.reshape(-1)[:: 7] = numpy.nan
    return out


@dataclass(frozen=True)
class Operation:
    """An operation: its name (``"<model or optimizer>.<what>"``), its reference, and how the
    conformance suite draws calls of it.

    ``reference(be, *args)`` is the definition. ``example(rng, sizes, dtype, saturated)``
    returns a :class:`Case` at ``sizes``; with ``saturated`` its pre-activations are in the
    hundreds, where a sigmoid or tanh written carelessly overflows or loses its gradient.
    ``axes`` names the sizes the operation depends on (``"T"``, ``"B"``, ``"m"``, ``"K"``,
    ``"n"``), so the suite varies those. ``rtol`` scales the suite's tolerance for operations
    whose rounding grows with the sequence (a backward pass through 64 steps).

    ``reads`` and ``writes`` name the array arguments (as the reference names them) the
    operation reads and writes; ``"H[0]"`` is row 0 of ``H`` (an incoming state, where the
    other rows are outputs). Tools that watch every operation (a backend that checks each for
    NaN, say) use them; the suite checks that its cases write what ``writes`` says.
    """

    name: str
    reference: Kernel
    example: Callable[..., Case]
    axes: Tuple[str, ...] = ("T", "B", "m")
    doc: str = ""
    rtol: float = 1.0
    reads: Tuple[str, ...] = ()
    writes: Tuple[str, ...] = ()
    #: The 0.5 ``Backend`` method this operation replaces, for backends that still override it.
    legacy_method: Optional[str] = None
    legacy_args: Optional[Callable[..., Tuple[Any, ...]]] = field(default=None, compare=False)


#: The 0.5 interface's heavy ``Backend`` methods, now operations: a backend that still overrides
#: one has it used as its kernel (and is told, once, what replaces it); a plugin that still calls
#: one gets the operation's kernel.
LEGACY_METHODS: Dict[str, str] = {
    "rnn_forward": "rnn.forward", "rnn_backward": "rnn.backward",
    "lstm_forward": "lstm.forward", "lstm_backward": "lstm.backward",
    "gru_forward": "gru.forward", "gru_backward": "gru.backward",
    "sgd_": "sgd.update", "adagrad_": "adagrad.update", "rmsprop_": "rmsprop.update",
    "adam_": "adam.update",
}


@functools.lru_cache(maxsize=None)
def legacy_overrides(cls: type) -> Dict[str, str]:
    """The 0.5 methods a backend class overrides (defines outside ``charrnn.backend``):
    ``{method: operation}`` (read-only: it is computed once per class)."""
    found = {}
    for method, operation in LEGACY_METHODS.items():
        owner = next((c for c in cls.__mro__ if method in vars(c)), None)
        if owner is not None and owner.__module__ != "charrnn.backend":
            found[method] = operation
    return found


def forced_reference() -> frozenset:
    """The operations ``CHARRNN_REFERENCE_KERNELS`` sends to their reference."""
    raw = os.environ.get("CHARRNN_REFERENCE_KERNELS", "")
    return frozenset(n.strip() for n in raw.split(",") if n.strip())


class KernelTable:
    """Kernels by (operation, backend name), first registration winning, each with the plugin
    that registered it (``origin``)."""

    def __init__(self) -> None:
        self._kernels: Dict[Tuple[str, str], Tuple[Kernel, str]] = {}

    def add(self, operation: str, backend: str, kernel: Kernel, origin: str) -> Optional[str]:
        """Record ``kernel``; returns why it was ignored, or None."""
        if not isinstance(operation, str) or not operation or not isinstance(backend, str) \
                or not backend:
            return "register_kernels needs an operation name and a backend name"
        if not callable(kernel):
            return f"the kernel for {operation!r} on {backend!r} is not callable"
        key = (operation, backend)
        if key in self._kernels:
            return (f"a kernel for {operation!r} on {backend!r} is already provided by "
                    f"{self._kernels[key][1]}; this one was ignored")
        self._kernels[key] = (kernel, origin)
        return None

    def get(self, operation: str, backend: str) -> Optional[Tuple[Kernel, str]]:
        return self._kernels.get((operation, backend))

    def pairs(self) -> List[Tuple[str, str, str]]:
        """(operation, backend, origin) of every registered kernel, sorted."""
        return sorted((op, be, origin) for (op, be), (_, origin) in self._kernels.items())


# -- what examples are drawn from ------------------------------------------------------------

def weights(rng: numpy.random.Generator, shape: Sequence[int], dtype: Any) -> numpy.ndarray:
    """Weights at the scale a trained model has (standard deviation ``1/sqrt(rows)``)."""
    return (rng.standard_normal(tuple(shape)) / numpy.sqrt(shape[0])).astype(dtype)


def preactivations(rng: numpy.random.Generator, shape: Sequence[int], dtype: Any,
                   saturated: bool) -> numpy.ndarray:
    """Inputs of an activation: ordinary (standard normal), or saturated, in the hundreds, with
    both signs, where exp overflows and a derivative written as ``1 - y**2`` is exactly 0."""
    values = rng.standard_normal(tuple(shape))
    if saturated:
        values = numpy.sign(values) * rng.uniform(100.0, 400.0, tuple(shape))
    return values.astype(dtype)


def states(rng: numpy.random.Generator, shape: Sequence[int], dtype: Any) -> numpy.ndarray:
    """A state buffer ``(T+1, ·)``: row 0, the incoming state, is read (values in (-1, 1));
    the other rows are outputs and arrive stale."""
    out = stale(rng, shape, dtype)
    out[0] = numpy.tanh(rng.standard_normal(tuple(shape[1:])))
    return out


def gradient(rng: numpy.random.Generator, n: int, dtype: Any) -> numpy.ndarray:
    """A flat gradient with a spread of magnitudes: most entries small, some far beyond a
    clip of 5 (so clipping is exercised), a few exactly zero."""
    g = rng.standard_normal(n) * numpy.exp(rng.uniform(-6.0, 3.0, n))
    g[:: 11] = 0.0
    return g.astype(dtype)
