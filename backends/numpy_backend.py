"""The NumPy backend: the CPU backend users train with.

It is the base :class:`~charrnn.backend.Backend` (whose plain code is the conformance suite's
reference) plus the overrides below, each there because it measured faster on the hot path. The
figures are per update at the course's configuration (batch 1, m=100, T=25, K=103, float64) on
the 2-core CPU the project is measured on; ``benchmarks/bench_layout.py`` reproduces them.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy
from charrnn import hookimpl
from charrnn.backend import Backend


class NumpyBackend(Backend):
    name = "numpy"
    xp = numpy

    #: How many distinct arrays' row views are kept; the models reuse a handful of buffers.
    ROW_CACHE_SIZE = 64

    def __init__(self, dtype: str = "float64") -> None:
        super().__init__(dtype)
        self._row_cache: Dict[int, Tuple[numpy.ndarray, List[numpy.ndarray]]] = {}
        self._scratch: Dict[Tuple[str, Tuple[int, ...]], numpy.ndarray] = {}

    def _rows(self, a: numpy.ndarray) -> List[numpy.ndarray]:
        """Row views of ``a``, made once per buffer.

        At m=100 a recurrence step costs a few µs, so creating three view objects per step is a
        measurable share. The cache holds the array itself, so an id is never reused for another
        array while its entry lives.
        """
        hit = self._row_cache.get(id(a))
        if hit is None or hit[0] is not a:
            if len(self._row_cache) >= self.ROW_CACHE_SIZE:
                self._row_cache.clear()
            hit = (a, list(a))
            self._row_cache[id(a)] = hit
        return hit[1]

    def _vectors(self, a: numpy.ndarray) -> List[numpy.ndarray]:
        """Row views of a (n, 1, m) array as (m,) vectors, made once per buffer (see _rows)."""
        hit = self._row_cache.get(id(a))
        if hit is None or hit[0] is not a:
            if len(self._row_cache) >= self.ROW_CACHE_SIZE:
                self._row_cache.clear()
            hit = (a, list(a.reshape(a.shape[0], a.shape[-1])))
            self._row_cache[id(a)] = hit
        return hit[1]

    def _tmp(self, name: str, shape: Tuple[int, ...]) -> numpy.ndarray:
        key = (name, shape)
        buf = self._scratch.get(key)
        if buf is None:
            buf = self._scratch[key] = numpy.empty(shape, dtype=self.dtype)
        return buf

    def _copy(self, name: str, a: numpy.ndarray) -> numpy.ndarray:
        """``a`` copied into a contiguous scratch buffer."""
        buf = self._tmp(name, a.shape)
        numpy.copyto(buf, a)
        return buf

    # -- the gradient's norm -------------------------------------------------------------------

    def clip_norm_(self, x, max_norm):
        # On the host the norm is known at once, so the scaling pass is skipped when it is not
        # needed (most updates, once training settles).
        norm = numpy.sqrt(numpy.dot(x, x))
        if norm > max_norm:
            x *= max_norm / (norm + 1e-6)
        return norm

    # -- the embedding's gradient ------------------------------------------------------------

    def segment_sum(self, ids, values, out):
        # A one-hot product beats ``numpy.add.at`` (bench_layout.py: 21 µs against 33 µs for 25
        # ids); the distinct ids, which the optimizer's sparse update needs, cost one mask more.
        n = ids.shape[0]
        onehot = numpy.zeros((out.shape[0], n), dtype=values.dtype)
        onehot[ids, numpy.arange(n)] = 1.0
        if out.flags.c_contiguous:
            numpy.dot(onehot, values, out=out)
        else:
            out[...] = onehot @ values
        seen = numpy.zeros(out.shape[0], dtype=bool)
        seen[ids] = True
        return seen.nonzero()[0]

    @classmethod
    def describe(cls) -> str:
        return f"numpy {numpy.__version__} (CPU)"


@hookimpl
def register_backends(register):
    register(NumpyBackend)


#: ``CHARRNN_NUMBA=0`` registers the NumPy kernels even where numba is installed: to compare
#: the two, or to run where numba's compiler misbehaves.
NUMBA_SWITCH = "CHARRNN_NUMBA"


def compiled_kernels_enabled() -> bool:
    """Whether the compiled kernels are registered: numba is installed (found, not imported:
    importing it is left to the first kernel that runs) and ``CHARRNN_NUMBA`` is not ``0``."""
    import importlib.util
    import os

    if os.environ.get(NUMBA_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return importlib.util.find_spec("numba") is not None


def _compiled(operation: str):
    """A kernel that imports the compiled module (and numba) when it first runs."""
    def kernel(be, *args):
        from charrnn.backends.numba_kernels import KERNELS

        return KERNELS[operation](be, *args)

    kernel.__name__ = kernel.__qualname__ = operation.replace(".", "_")
    kernel.__module__ = "charrnn.backends.numba_kernels"
    return kernel


#: The operations with a compiled kernel (``charrnn.backends.numba_kernels``).
COMPILED = ("rnn.forward", "rnn.backward", "lstm.forward", "lstm.backward", "gru.forward",
            "gru.backward", "adagrad.update", "rmsprop.update", "adam.update", "sgd.update")


@hookimpl
def register_kernels(register):
    from charrnn.backends.numpy_kernels import KERNELS

    compiled = COMPILED if compiled_kernels_enabled() else ()
    for operation in compiled:
        register(operation, NumpyBackend.name, _compiled(operation))
    for operation, kernel in KERNELS.items():
        if operation not in compiled:
            register(operation, NumpyBackend.name, kernel)
