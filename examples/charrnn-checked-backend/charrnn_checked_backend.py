"""An example third-party charrnn backend plugin: two NumPy backends from one entry point.

``--backend reference``
    The base class :class:`charrnn.backend.Backend` as it stands, computing with NumPy, with no
    kernel registered: every operation (a recurrence, an optimizer's update) runs its reference,
    the plain code the conformance suite compares every backend against, without the built-in
    NumPy backend's kernels. When a run behaves differently on ``--backend numpy`` and on
    ``--backend reference``, the difference lies in those kernels.

``--backend checked``
    The reference, with every operation checked for non-finite values, in the spirit of
    ``torch.autograd.detect_anomaly``: the array basics it overrides, and every operation's
    kernel, which it wraps (:meth:`CheckedBackend.kernel`), each checked by what the operation
    declares it reads and writes, so a third party's model is checked too. The core notices a NaN or an infinity only in the loss,
    after the update that produced it; this backend stops inside the update, at the first
    operation that wrote one, with a line naming the operation, the array and the first bad
    entry. An operation given an input that is already non-finite is named too: that value was
    computed outside the backend's operations, by a model's or an optimizer's own array code.
    The checks read every array an operation touches, so training is slower: it is a tool for
    finding where a run goes wrong, not for training.

Both subclass the base ``Backend``, not the built-in NumPy backend, and set ``xp = numpy``, so
the models' own array code (in-place operators, ``out=`` arguments, views into the flat parameter
array) runs as it does on NumPy. Neither needs anything but NumPy, so ``check_available`` is the
base class's, which never refuses.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Sequence, Tuple

import numpy
from charrnn import hookimpl
from charrnn.backend import Backend
from charrnn.errors import CharrnnError
from charrnn.kernels import Operation

__version__ = "0.2.0"


class ReferenceBackend(Backend):
    """``--backend reference``: the base class's operations, unchanged, on NumPy."""

    name = "reference"
    xp = numpy

    @classmethod
    def describe(cls) -> str:
        return f"{cls.name}: charrnn's reference operations on numpy {numpy.__version__} (CPU)"


class NonFiniteValue(CharrnnError):
    """An operation of the ``checked`` backend wrote, or was given, a NaN or an infinity."""


#: The array basics that are checked: the arguments each reads, then those it writes. Every
#: other operation declares its own (``Operation.reads`` and ``writes``). ``H[0]`` is row 0 of
#: ``H``, the incoming state; the other rows, like every output, arrive holding stale data, so
#: they are checked only once written.
CHECKED_BASICS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "softmax": (("O",), ("O",)),
    "segment_sum": (("values",), ("out",)),
    "clip_norm_": (("x",), ("x",)),
}


def _pick(arguments: Dict[str, Any], spec: str) -> Any:
    """The array an entry of a read or write list names: an argument, or its row 0."""
    if spec.endswith("[0]"):
        return arguments[spec[:-3]][0]
    return arguments[spec]


def _first_bad(array: Any) -> str:
    """Where the first non-finite entry of ``array`` is, and what it holds."""
    index = tuple(int(i) for i in numpy.argwhere(~numpy.isfinite(array))[0])
    return f"{index if len(index) != 1 else index[0]}: {array[index]}"


def _checked_call(what: str, arguments: Dict[str, Any], reads: Sequence[str],
                  writes: Sequence[str], call: Callable[[], Any]) -> Any:
    """``call()``, with the arrays ``reads`` names checked before and ``writes`` after."""
    for spec in reads:
        array = _pick(arguments, spec)
        if not numpy.isfinite(array).all():
            raise NonFiniteValue(
                f"backend 'checked': {what} was given a non-finite {spec} (first at "
                f"{_first_bad(array)}); it was computed outside the backend's operations, by "
                "the model's or the optimizer's own code")
    result = call()
    for spec in writes:
        array = _pick(arguments, spec)
        if not numpy.isfinite(array).all():
            raise NonFiniteValue(
                f"backend 'checked': {what} wrote a non-finite value into {spec} (first at "
                f"{_first_bad(array)}) from finite inputs; lower --eta or --sigma, or "
                "clip harder (--clip, --clip-norm)")
    return result


def _checked_basic(op: str) -> Callable[..., Any]:
    """The reference's array basic ``op``, checked."""
    method = getattr(ReferenceBackend, op)
    signature = inspect.signature(method)
    reads, writes = CHECKED_BASICS[op]

    def operation(self: "CheckedBackend", *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        return _checked_call(op, arguments, reads, writes,
                             lambda: method(self, *args, **kwargs))

    operation.__name__ = operation.__qualname__ = op
    operation.__doc__ = method.__doc__
    return operation


class CheckedBackend(ReferenceBackend):
    """``--backend checked``: the reference, stopping at the first non-finite value."""

    name = "checked"

    def kernel(self, operation: Operation) -> Callable[..., Any]:
        """The operation's kernel here (its reference: no kernel is registered for this
        backend), checked by what the operation declares it reads and writes."""
        inner = super().kernel(operation)
        names = list(inspect.signature(operation.reference).parameters)[1:]

        def checked(*args: Any) -> Any:
            return _checked_call(operation.name, dict(zip(names, args)), operation.reads,
                                 operation.writes, lambda: inner(*args))

        return checked

    @classmethod
    def describe(cls) -> str:
        return (f"{cls.name}: charrnn's reference operations on numpy {numpy.__version__} (CPU), "
                "each checked for NaN and infinity")


for _op in CHECKED_BASICS:
    setattr(CheckedBackend, _op, _checked_basic(_op))


@hookimpl
def register_backends(register):
    # One entry point, two backends: each is listed, chosen with --backend and checked with
    # `charrnn conformance --backend NAME` on its own.
    register(ReferenceBackend)
    register(CheckedBackend)
