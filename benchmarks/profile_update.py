"""Where the time of one batched training update goes, and what the NumPy backend's recurrences
save against the plain reference code.

Why this exists: the batched models spend an update in a handful of places (the recurrences, the
large matrix products outside them, the output layer, the optimizer), and a speed-up is only
worth its code if it shows up there. For each model (LSTM and GRU of 2 x 256, the vanilla RNN of
one layer of 512; batch 32 x sequence 64, float32 by default) this script times, in one process
and interleaved so that machine noise lands on both sides:

* the **recurrences** alone: the backend's ``*_forward`` and ``*_backward`` for one layer, once
  with the operations' references (:mod:`charrnn.models.rnn`, ``lstm`` and ``gru``: the plain
  loops, "before") and once with the NumPy backend's kernels
  (:mod:`charrnn.backends.numpy_kernels`, "after"), and within them the per-step recurrent matrix products
  alone, which neither can avoid;
* the same with the compiled kernels (:mod:`charrnn.backends.numba_kernels`, where numba is
  installed), against the NumPy kernels;
* the **whole update** split into its parts, with the NumPy backend as it runs (its compiled
  kernels where numba is installed): forward and backward of the
  model (``loss_and_grads``) and the optimizer step (Adam with the norm clip, as the race's
  recipe runs it), and the share of the recurrences in it.

Medians of ``--repeats`` in milliseconds; ``--threads N`` pins the BLAS threads first.

    python benchmarks/profile_update.py --threads 2
    python benchmarks/profile_update.py --models lstm --dtype float64 --repeats 9
"""
from __future__ import annotations

import sys

from pin_threads import pin_threads

if __name__ == "__main__":
    pin_threads(sys.argv[1:], __file__)

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Callable, Dict, List  # noqa: E402

import numpy as np  # noqa: E402
from charrnn.backends.numpy_backend import NumpyBackend  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from charrnn.backends import numpy_kernels  # noqa: E402

try:  # the compiled kernels, where numba is installed
    from charrnn.backends import numba_kernels  # noqa: E402
except ImportError:  # pragma: no cover - numba missing
    numba_kernels = None
from charrnn.models import gru, lstm, rnn  # noqa: E402

#: The references, under the names the kernels module uses.
REFERENCE = SimpleNamespace(rnn_forward=rnn.rnn_forward, rnn_backward=rnn.rnn_backward,
                            lstm_forward=lstm.lstm_forward, lstm_backward=lstm.lstm_backward,
                            gru_forward=gru.gru_forward, gru_backward=gru.gru_backward)
from charrnn.assembly import make_model, make_optimizer  # noqa: E402

T, B, K = 64, 32, 65
SIZES = {"lstm": (2, 256, 4), "gru": (2, 256, 3), "rnn": (1, 512, 1)}


def ms(fn: Callable[[], object], number: int = 3) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number * 1e3


def recurrence_cases(kind: str, be: NumpyBackend, rng: np.random.Generator):
    """(forward, backward) closures for one layer of ``kind``, given the implementation (the
    references, or the NumPy kernels)."""
    _, m, k = SIZES[kind]
    dt = be.dtype
    Wh = (rng.standard_normal((m, k * m)) * 0.05).astype(dt)
    Z0 = rng.standard_normal((T, B, k * m)).astype(dt)
    Z, dZ = Z0.copy(), np.empty_like(Z0)
    H, C = np.zeros((T + 1, B, m), dt), np.zeros((T + 1, B, m), dt)
    RH = np.zeros((T, B, m), dt)
    dH = rng.standard_normal((T, B, m)).astype(dt)

    def forward(impl):
        Z[...] = Z0
        if kind == "lstm":
            impl.lstm_forward(be, Wh, Z, H, C)
        elif kind == "gru":
            impl.gru_forward(be, Wh, Z, H, RH)
        else:
            impl.rnn_forward(be, Wh, Z, H)

    def backward(impl):
        if kind == "lstm":
            impl.lstm_backward(be, Wh, Z, C, dH, dZ)
        elif kind == "gru":
            impl.gru_backward(be, Wh, Z, H, RH, dH, dZ)
        else:
            impl.rnn_backward(be, Wh, H, dH, dZ)

    out = np.empty((B, k * m), dt)
    back = np.empty((B, m), dt)
    WhT = Wh.T

    def products():  # the recurrent products of one layer, forward and backward
        for t in range(T):
            np.dot(H[t], Wh if kind != "rnn" else WhT, out=out)
            np.dot(dZ[t], WhT if kind != "rnn" else Wh, out=back)

    return forward, backward, products


def profile(kind: str, dtype: str, repeats: int) -> Dict[str, float]:
    be = NumpyBackend(dtype)
    rng = np.random.default_rng(0)
    forward, backward, products = recurrence_cases(kind, be, rng)
    compiled = numba_kernels or numpy_kernels
    for impl in (numpy_kernels, compiled):
        forward(impl)
        backward(impl)
    runs: Dict[str, List[float]] = {k: [] for k in ("fwd before", "fwd after", "bwd before",
                                                    "bwd after", "fwd compiled", "bwd compiled",
                                                    "products", "update", "optimizer")}
    layers, m, _ = SIZES[kind]
    model = make_model(kind, be, K, {"hidden": m, "layers": layers, "seed": 1})
    opt = make_optimizer("adam", be, model.size, 2e-3, 0.0)
    x, y = rng.integers(0, K, (T, B)), rng.integers(0, K, (T, B))
    state = model.zero_state(B)

    def optimizer_step():
        be.clip_norm_(model.grads.flat, 5.0 * T)
        opt.step(model.params.flat, model.grads.flat, model.support)

    model.loss_and_grads(x, y, state)
    for _ in range(repeats):
        runs["fwd before"].append(ms(lambda: forward(REFERENCE)))
        runs["fwd after"].append(ms(lambda: forward(numpy_kernels)))
        runs["bwd before"].append(ms(lambda: backward(REFERENCE)))
        runs["bwd after"].append(ms(lambda: backward(numpy_kernels)))
        runs["fwd compiled"].append(ms(lambda: forward(compiled)))
        runs["bwd compiled"].append(ms(lambda: backward(compiled)))
        runs["products"].append(ms(products))
        runs["update"].append(ms(lambda: model.loss_and_grads(x, y, state)))
        runs["optimizer"].append(ms(optimizer_step))
    return {k: statistics.median(v) for k, v in runs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="lstm,gru,rnn")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (set first)")
    opts = parser.parse_args()
    print(f"batch {B} x sequence {T}, K={K}, {opts.dtype}; medians of {opts.repeats}, ms")
    for kind in opts.models.split(","):
        r = profile(kind, opts.dtype, opts.repeats)
        layers, m, _ = SIZES[kind]
        rec = layers * (r["fwd compiled"] + r["bwd compiled"])
        total = r["update"] + r["optimizer"]
        print(f"\n{kind} {layers} x {m}:")
        print(f"  one layer's recurrence: forward {r['fwd before']:.1f} -> {r['fwd after']:.1f} "
              f"({r['fwd before'] / r['fwd after']:.2f}x), backward {r['bwd before']:.1f} -> "
              f"{r['bwd after']:.1f} ({r['bwd before'] / r['bwd after']:.2f}x); compiled: "
              f"forward {r['fwd compiled']:.1f} ({r['fwd after'] / r['fwd compiled']:.2f}x the "
              f"NumPy kernel), backward {r['bwd compiled']:.1f} "
              f"({r['bwd after'] / r['bwd compiled']:.2f}x); its recurrent products alone "
              f"{r['products']:.1f}")
        print(f"  whole update {total:.1f}: forward and backward {r['update']:.1f} (recurrences "
              f"{rec:.1f}, of which products {layers * r['products']:.1f}; everything else "
              f"{r['update'] - rec:.1f}), optimizer with norm clip {r['optimizer']:.1f}")
        print(f"  {B * T / total * 1e3:,.0f} characters/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
