"""The memory-layout choices on the hot path, each timed against the plain alternative.

Why this exists: the vanilla RNN's module and the NumPy backend keep a few layout choices that a
student reading the equations would not write first (an embedding table for U, a packed output
layer, cached row views, a vector path for one stream, reused scratch arrays, a sparse AdaGrad
step). Each has a one-line reason in the code; this script is the figure behind it. Every case
times the choice and its plain alternative on the same arrays, interleaved, in one process, at the
course's configuration (batch 1, m=100, T=25, the embedded corpus' K, float64 unless
``--dtype``), and reports the median microseconds per update of each and their ratio.

    python benchmarks/bench_layout.py
    python benchmarks/bench_layout.py --dtype float32 --repeats 9
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Tuple

import numpy as np

M, T = 100, 25


def per_call_us(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number * 1e6


def compare(name: str, chosen: Callable[[], object], plain: Callable[[], object], repeats: int,
            number: int) -> Dict[str, object]:
    """Median µs per call of ``chosen`` and ``plain``, timed alternately."""
    for fn in (chosen, plain):  # warm up
        per_call_us(fn, max(1, number // 10))
    a: List[float] = []
    b: List[float] = []
    for _ in range(repeats):
        a.append(per_call_us(chosen, number))
        b.append(per_call_us(plain, number))
    ratios = [y / x for x, y in zip(a, b)]
    return {"case": name, "chosen_us": statistics.median(a), "plain_us": statistics.median(b),
            "speedup": statistics.median(ratios)}


def cases(dtype: str, K: int, ids: np.ndarray) -> List[Tuple[str, Callable, Callable, int]]:
    rng = np.random.default_rng(0)
    f = np.dtype(dtype)
    x = ids[:T].astype(np.int64)
    U = (rng.standard_normal((M, K)) * 0.01).astype(f)
    E = np.ascontiguousarray(U.T)
    b = np.zeros(M, f)
    W = (rng.standard_normal((M, M)) * 0.01).astype(f)
    V = (rng.standard_normal((K, M)) * 0.01).astype(f)
    c = np.zeros(K, f)
    Vc = np.ascontiguousarray(np.concatenate([V, c[:, None]], axis=1))
    A = np.zeros((T, M), f)
    H = np.tanh(rng.standard_normal((T + 1, M))).astype(f)
    dA = rng.standard_normal((T, M)).astype(f)
    out = []

    # 1. U x_t as a row lookup in E = U^T, against one-hot products, one per step.
    def lookup():
        np.add(E[x], b, out=A)

    def onehot_products():
        for t in range(T):
            one = np.zeros(K, f)
            one[x[t]] = 1.0
            A[t] = U @ one + b

    out.append(("input projection: row lookup in E = U^T vs one-hot products", lookup,
                onehot_products, 2000))

    # 2. dU as a segment sum (one one-hot product) against numpy.add.at.
    dE = np.zeros((K, M), f)
    cols = np.arange(T)

    def segment_sum():
        onehot = np.zeros((K, T), f)
        onehot[x, cols] = 1.0
        np.dot(onehot, dA, out=dE)

    def add_at():
        dE[...] = 0
        np.add.at(dE, x, dA)

    out.append(("dU: one-hot product vs numpy.add.at", segment_sum, add_at, 2000))

    # 3. The output layer: Vc [h; 1] as columns (0.1.0's arithmetic) vs H V^T + c as rows.
    H1 = np.ones((T, M + 1), f)
    H1[:, :M] = H[1:]
    HT1 = np.zeros((M + 1, T), f)
    OT = np.zeros((K, T), f)
    O = np.zeros((T, K), f)
    Hs = np.ascontiguousarray(H[1:])
    dVc = np.zeros((K, M + 1), f)
    dV, dc, dH = np.zeros((K, M), f), np.zeros(K, f), np.zeros((T, M), f)

    def packed_columns():
        HT1[...] = H1.T
        np.dot(Vc, HT1, out=OT)
        np.dot(OT, H1, out=dVc)
        np.dot(OT.T, Vc[:, :M], out=dH)

    def plain_rows():
        np.dot(Hs, V.T, out=O)
        np.add(O, c, out=O)
        np.dot(O.T, Hs, out=dV)
        O.sum(axis=0, out=dc)
        np.dot(O, V, out=dH)

    out.append(("output layer: packed Vc, columns vs V and c, rows", packed_columns, plain_rows,
                2000))

    # 4. The recurrence at one stream: cached (m,) row views vs (1, m) matrices made each time.
    Hv = np.zeros((T + 1, 1, M), f)
    Av = rng.standard_normal((T, 1, M)).astype(f)
    tmp = np.zeros(M, f)
    rows_h, rows_a = list(Hv.reshape(T + 1, M)), list(Av.reshape(T, M))
    tmp2 = np.zeros((1, M), f)

    def vector_rows():
        for a_t, h_prev, h_t in zip(rows_a, rows_h, rows_h[1:]):
            W.dot(h_prev, tmp)
            np.add(tmp, a_t, h_t)
            np.tanh(h_t, h_t)

    def matrix_rows():
        for t in range(T):
            np.dot(Hv[t], W.T, out=tmp2)
            np.add(tmp2, Av[t], Hv[t + 1])
            np.tanh(Hv[t + 1], Hv[t + 1])

    out.append(("recurrence, one stream: cached vector rows vs (1, m) slices", vector_rows,
                matrix_rows, 1000))

    # 5. Scratch arrays allocated once vs fresh ones every update (the RNN's dozen arrays).
    shapes = [(T, 1, M), (T + 1, 1, M), (T, 1, M), (T, 1, M), (T, 1, M), (T, M + 1), (M + 1, T),
              (K, T), (K, T), (T, 1, M), (M,), (T,)]
    kept = [np.zeros(s, f) for s in shapes]

    def reuse():
        for a in kept:
            a[..., :1] = 0.0  # touch each, as the update writes them

    def allocate():
        for s in shapes:
            a = np.zeros(s, f)
            a[..., :1] = 0.0

    out.append(("scratch arrays: reused vs allocated per update", reuse, allocate, 5000))

    # 6. AdaGrad: the dense parameters and only the touched rows of E vs every parameter.
    dense = K * (M + 1) + M * M + M
    size = dense + K * M
    params, mem, scratch = (np.zeros(size, f) for _ in range(3))
    grads = rng.standard_normal(size).astype(f)
    grads[dense:].reshape(K, M)[np.setdiff1d(np.arange(K), np.unique(x))] = 0.0
    rows = np.unique(x)

    def adagrad(p, g, m_, s):
        np.multiply(g, g, s)
        np.add(m_, s, m_)
        np.add(m_, 1e-8, s)
        np.sqrt(s, s)
        np.divide(g, s, s)
        np.multiply(s, 0.1, s)
        np.subtract(p, s, p)

    P, G, Mm, S = (a[dense:].reshape(K, M) for a in (params, grads, mem, scratch))

    def sparse_step():
        adagrad(params[:dense], grads[:dense], mem[:dense], scratch[:dense])
        p_rows, m_rows = P[rows], Mm[rows]
        adagrad(p_rows, G[rows], m_rows, S[: len(rows)])
        P[rows] = p_rows
        Mm[rows] = m_rows

    def dense_step():
        adagrad(params, grads, mem, scratch)

    out.append(("AdaGrad: dense part + touched rows of E vs every parameter", sparse_step,
                dense_step, 2000))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--repeats", type=int, default=7, help="alternating timed repeats")
    parser.add_argument("--vocab", type=int, default=None,
                        help="a vocabulary of this many characters (random ids) instead of the "
                             "embedded corpus: the sparse AdaGrad step pays with large ones")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    if args.vocab:
        K = args.vocab
        ids = np.random.default_rng(1).integers(0, K, size=10_000)
    else:
        from charrnn.data import load_corpus

        corpus = load_corpus(None)
        K, ids = corpus.vocab_size, corpus.ids
    results = [compare(name, chosen, plain, args.repeats, number)
               for name, chosen, plain, number in cases(args.dtype, K, ids)]
    if args.json:
        print(json.dumps({"dtype": args.dtype, "numpy": np.__version__, "results": results},
                         indent=2))
        return 0
    print(f"numpy {np.__version__}, Python {platform.python_version()}, {args.dtype}, "
          f"m={M}, T={T}, K={K}, batch 1; medians of {args.repeats} "
          "alternating repeats")
    width = max(len(r["case"]) for r in results)
    print(f"{'case':<{width}}  {'chosen µs':>10}  {'plain µs':>9}  {'speed-up':>8}")
    for r in results:
        print(f"{r['case']:<{width}}  {r['chosen_us']:10.1f}  {r['plain_us']:9.1f}  "
              f"{r['speedup']:7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
