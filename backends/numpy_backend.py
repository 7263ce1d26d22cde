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

    # -- the vanilla RNN's recurrence --------------------------------------------------------

    def rnn_forward(self, Wh, A, H):
        T, B, m = A.shape
        if B != 1:
            return self._rnn_forward_batch(Wh, A, H)
        # One stream: step through cached (m,) vector views, not (1, m) matrices sliced anew;
        # ``Wh.dot(v, out)`` is a matrix-vector product without array-function dispatch. The
        # recurrence takes 1.5x less time so (bench_layout.py: 170 µs against 255 µs).
        tmp = self._tmp("rnn", (m,))
        w_dot, add, tanh = Wh.dot, numpy.add, numpy.tanh
        rows = self._vectors(H)
        for a_t, h_prev, h_t in zip(self._vectors(A), rows, rows[1:]):
            w_dot(h_prev, tmp)
            add(tmp, a_t, h_t)
            tanh(h_t, h_t)
        return H

    def _rnn_forward_batch(self, Wh, A, H):
        T, B, m = A.shape
        tmp = self._tmp("rnn", (B, m))
        dot, add, tanh, WT = numpy.dot, numpy.add, numpy.tanh, Wh.T
        rows = self._rows(H)
        for a_t, h_prev, h_t in zip(self._rows(A), rows, rows[1:]):
            dot(h_prev, WT, tmp)
            add(tmp, a_t, h_t)
            tanh(h_t, h_t)
        return H

    def rnn_backward(self, Wh, H, dH, dA):
        T, B, m = dH.shape
        D = self._tmp("rnn D", (T, B, m))
        Hs = H[1:]
        numpy.multiply(Hs, Hs, out=D)
        numpy.subtract(1.0, D, out=D)  # 1 - h_t**2, for all steps at once
        add, multiply = numpy.add, numpy.multiply
        if B == 1:  # vectors, as in the forward pass
            tmp = self._tmp("rnn", (m,))
            dot = Wh.T.dot  # Wh.T @ v, which is v @ Wh
            dh, d, da = self._vectors(dH), self._vectors(D), self._vectors(dA)
        else:
            tmp = self._tmp("rnn", (B, m))
            dot_, WW = numpy.dot, Wh

            def dot(v, out):
                return dot_(v, WW, out)

            dh, d, da = self._rows(dH), self._rows(D), self._rows(dA)
        multiply(dh[T - 1], d[T - 1], da[T - 1])
        for t in range(T - 2, -1, -1):
            dot(da[t + 1], tmp)
            add(tmp, dh[t], tmp)
            multiply(tmp, d[t], da[t])
        return dA

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
