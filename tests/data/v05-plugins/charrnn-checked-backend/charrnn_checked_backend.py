"""An example third-party charrnn backend plugin: two NumPy backends from one entry point.

``--backend reference``
    The base class :class:`charrnn.backend.Backend` as it stands, computing with NumPy. Its
    operations are the plain code the conformance suite compares every backend against, without
    the built-in NumPy backend's optimisations. When a run behaves differently on ``--backend
    numpy`` and on ``--backend reference``, the difference lies in those optimisations.

``--backend checked``
    The reference, with every operation checked for non-finite values, in the spirit of
    ``torch.autograd.detect_anomaly``. The core notices a NaN or an infinity only in the loss,
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
from typing import Any, Callable, Dict, Tuple

import numpy
from charrnn import hookimpl
from charrnn.backend import Backend
from charrnn.errors import CharrnnError

__version__ = "0.1.0"


class ReferenceBackend(Backend):
    """``--backend reference``: the base class's operations, unchanged, on NumPy."""

    name = "reference"
    xp = numpy

    @classmethod
    def describe(cls) -> str:
        return f"{cls.name}: charrnn's reference operations on numpy {numpy.__version__} (CPU)"


class NonFiniteValue(CharrnnError):
    """An operation of the ``checked`` backend wrote, or was given, a NaN or an infinity."""


#: Each operation that is checked: the arguments it reads, then those it writes. ``H[0]`` and
#: ``C[0]`` are the incoming state; the other rows of ``H`` and ``C``, like every output, arrive
#: holding stale data, so they are checked only once written. ``scratch`` is never checked.
CHECKED_OPERATIONS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "softmax": (("O",), ("O",)),
    "segment_sum": (("values",), ("out",)),
    "clip_norm_": (("x",), ("x",)),
    "rnn_forward": (("Wh", "A", "H[0]"), ("H",)),
    "rnn_backward": (("Wh", "H", "dH"), ("dA",)),
    "lstm_forward": (("Wh", "G", "H[0]", "C[0]"), ("G", "H", "C")),
    "lstm_backward": (("Wh", "G", "C", "dH"), ("dG",)),
    "gru_forward": (("Wh", "G", "H[0]"), ("G", "H", "RH")),
    "gru_backward": (("Wh", "G", "H", "RH", "dH"), ("dG",)),
    "sgd_": (("param", "grad"), ("param",)),
    "adagrad_": (("param", "grad", "mem"), ("param", "mem")),
    "rmsprop_": (("param", "grad", "ms"), ("param", "ms")),
    "adam_": (("param", "grad", "m", "v"), ("param", "m", "v")),
}


def _pick(arguments: Dict[str, Any], spec: str) -> Any:
    """The array an entry of :data:`CHECKED_OPERATIONS` names: an argument, or its row 0."""
    if spec.endswith("[0]"):
        return arguments[spec[:-3]][0]
    return arguments[spec]


def _first_bad(array: Any) -> str:
    """Where the first non-finite entry of ``array`` is, and what it holds."""
    index = tuple(int(i) for i in numpy.argwhere(~numpy.isfinite(array))[0])
    return f"{index if len(index) != 1 else index[0]}: {array[index]}"


def _checked(op: str) -> Callable[..., Any]:
    """The reference's operation ``op``, with its inputs checked before and outputs after."""
    method = getattr(ReferenceBackend, op)
    signature = inspect.signature(method)
    reads, writes = CHECKED_OPERATIONS[op]

    def operation(self: "CheckedBackend", *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        for spec in reads:
            array = _pick(arguments, spec)
            if not numpy.isfinite(array).all():
                raise NonFiniteValue(
                    f"backend 'checked': {op} was given a non-finite {spec} (first at "
                    f"{_first_bad(array)}); it was computed outside the backend's operations, by "
                    "the model's or the optimizer's own code")
        result = method(self, *args, **kwargs)
        for spec in writes:
            array = _pick(arguments, spec)
            if not numpy.isfinite(array).all():
                raise NonFiniteValue(
                    f"backend 'checked': {op} wrote a non-finite value into {spec} (first at "
                    f"{_first_bad(array)}) from finite inputs; lower --eta or --sigma, or "
                    "clip harder (--clip, --clip-norm)")
        return result

    operation.__name__ = operation.__qualname__ = op
    operation.__doc__ = method.__doc__
    return operation


class CheckedBackend(ReferenceBackend):
    """``--backend checked``: the reference, stopping at the first non-finite value."""

    name = "checked"

    @classmethod
    def describe(cls) -> str:
        return (f"{cls.name}: charrnn's reference operations on numpy {numpy.__version__} (CPU), "
                "each checked for NaN and infinity")


for _op in CHECKED_OPERATIONS:
    setattr(CheckedBackend, _op, _checked(_op))


@hookimpl
def register_backends(register):
    # One entry point, two backends: each is listed, chosen with --backend and checked with
    # `charrnn conformance --backend NAME` on its own.
    register(ReferenceBackend)
    register(CheckedBackend)
