"""The seed configuration as a whole process: ``charrnn run`` against the classic min-char-rnn
program, each started as a user starts it, on the same novel-length text, alternated.

Why this exists: ``bench_numpy.py`` times the update alone, in one process. A user who runs the
course's assignment times the program: start-up, reading the text, the updates, the samples
printed as training goes, and what is written at the end. This script runs both programs in
subprocesses for the same number of updates and divides their wall times:

* **classic** (:data:`CLASSIC`, written here as a script and run with this Python): min-char-rnn's
  main loop as the assignment hands it out: per-step one-hot column vectors and dicts, AdaGrad
  per parameter, the gradient clipped per element, and every 100 updates the loss printed and a
  200-character sample drawn with ``np.random.choice``. It stops after ``--updates`` (the
  original never stops).
* **charrnn**: ``python -m charrnn run --data TEXT --iterations N`` with nothing else: the
  course configuration with everything a run does by default (the gradient check at the start,
  progress lines, samples, checkpoints, the report and the loss plot at the end).

It also reports two **floors** on this machine, and how far charrnn's whole process is from each:

* the update's calls alone: the products, tanh, softmax and AdaGrad of one update as NumPy calls
  on preallocated arrays with no framework around them, its recurrences as matrix-vector
  products, timed in one process: what an implementation that computes the course model's
  numbers with NumPy pays;
* the arithmetic: the update's products (about 2.5 MFLOP) at the rate this machine's BLAS
  multiplies large float64 matrices, which no implementation of these products beats.

    python benchmarks/bench_seed.py                       # Tiny Shakespeare from ../shared
    python benchmarks/bench_seed.py --data novel.txt --updates 20000 --repeats 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_TEXT = os.path.join(HERE, "..", "..", "shared", "data", "tinyshakespeare.txt")

#: min-char-rnn's program (hidden 100, sequence 25, AdaGrad at 0.1, clip 5, sample every 100
#: updates), with a stop after ``sys.argv[2]`` updates.
CLASSIC = r'''
import sys
import numpy as np

data = open(sys.argv[1], "r", encoding="utf-8").read()
updates = int(sys.argv[2])
chars = sorted(set(data))
data_size, vocab_size = len(data), len(chars)
print("data has %d characters, %d unique." % (data_size, vocab_size))
char_to_ix = {ch: i for i, ch in enumerate(chars)}
ix_to_char = {i: ch for i, ch in enumerate(chars)}

hidden_size, seq_length, learning_rate = 100, 25, 1e-1
Wxh = np.random.randn(hidden_size, vocab_size) * 0.01
Whh = np.random.randn(hidden_size, hidden_size) * 0.01
Why = np.random.randn(vocab_size, hidden_size) * 0.01
bh = np.zeros((hidden_size, 1))
by = np.zeros((vocab_size, 1))


def lossFun(inputs, targets, hprev):
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
        ys[t] = np.dot(Why, hs[t]) + by
        ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))
        loss += -np.log(ps[t][targets[t], 0])
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        dWhh += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(Whh.T, dhraw)
    for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
        np.clip(dparam, -5, 5, out=dparam)
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]


def sample(h, seed_ix, n):
    x = np.zeros((vocab_size, 1))
    x[seed_ix] = 1
    ixes = []
    for t in range(n):
        h = np.tanh(np.dot(Wxh, x) + np.dot(Whh, h) + bh)
        y = np.dot(Why, h) + by
        p = np.exp(y) / np.sum(np.exp(y))
        ix = np.random.choice(range(vocab_size), p=p.ravel())
        x = np.zeros((vocab_size, 1))
        x[ix] = 1
        ixes.append(ix)
    return ixes


n, p = 0, 0
mWxh, mWhh, mWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
mbh, mby = np.zeros_like(bh), np.zeros_like(by)
smooth_loss = -np.log(1.0 / vocab_size) * seq_length
while n < updates:
    if p + seq_length + 1 >= len(data) or n == 0:
        hprev = np.zeros((hidden_size, 1))
        p = 0
    inputs = [char_to_ix[ch] for ch in data[p:p + seq_length]]
    targets = [char_to_ix[ch] for ch in data[p + 1:p + seq_length + 1]]
    if n % 100 == 0:
        sample_ix = sample(hprev, inputs[0], 200)
        txt = "".join(ix_to_char[ix] for ix in sample_ix)
        print("----\n %s \n----" % (txt,))
    loss, dWxh, dWhh, dWhy, dbh, dby, hprev = lossFun(inputs, targets, hprev)
    smooth_loss = smooth_loss * 0.999 + loss * 0.001
    if n % 100 == 0:
        print("iter %d, loss: %f" % (n, smooth_loss))
    for param, dparam, mem in zip([Wxh, Whh, Why, bh, by], [dWxh, dWhh, dWhy, dbh, dby],
                                  [mWxh, mWhh, mWhy, mbh, mby]):
        mem += dparam * dparam
        param += -learning_rate * dparam / np.sqrt(mem + 1e-8)
    p += seq_length
    n += 1
'''


def run(cmd: List[str], cwd: str) -> float:
    """Wall seconds of ``cmd``, its output discarded (a terminal's printing is not the
    program's work)."""
    began = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"bench_seed: {' '.join(cmd)} failed ({done.returncode}): "
                         f"{done.stderr.strip().splitlines()[-1:]}")
    return wall


def floor_update_seconds(data: str, repeats: int = 2000) -> float:
    """The course update's arithmetic alone, as NumPy calls on preallocated arrays: forward
    and backward through 25 steps, the softmax and its loss, the weight gradients, the clip and
    AdaGrad. The median over blocks of ``repeats`` updates, in seconds per update."""
    import numpy as np

    text = open(data, encoding="utf-8").read()
    chars = sorted(set(text))
    K, m, T = len(chars), 100, 25
    lookup = {c: i for i, c in enumerate(chars)}
    ids = np.array([lookup[c] for c in text[: 100 * T + 1]])
    rng = np.random.default_rng(0)
    E, W = rng.standard_normal((K, m)) * 0.01, rng.standard_normal((m, m)) * 0.01
    Vc, b = rng.standard_normal((K, m + 1)) * 0.01, np.zeros(m)
    params = [E, W, Vc, b]
    mems = [np.zeros_like(a) for a in params]
    grads = [np.zeros_like(a) for a in params]
    H = np.zeros((T + 1, m + 1))
    H[:, m] = 1.0
    A, D, O = np.empty((T, m)), np.empty((T, m)), np.empty((K, T))
    tmp, scratch = np.empty(m), [np.empty_like(a) for a in params]
    rows_H = list(H[:, :m])
    rows_A, rows_D = list(A), list(D)
    steps = np.arange(T)
    dot, tanh = np.dot, np.tanh

    def update(x, y):
        dE, dW, dVc, db = grads
        np.add(E[x], b, out=A)
        for t in range(T):  # forward: h_t = tanh(W h_{t-1} + a_t)
            dot(W, rows_H[t], tmp)
            np.add(tmp, rows_A[t], rows_H[t + 1])
            tanh(rows_H[t + 1], rows_H[t + 1])
        dot(Vc, H[1:].T, O)  # logits, (K, T)
        np.subtract(O, O.max(axis=0), out=O)
        np.exp(O, O)
        np.divide(O, O.sum(axis=0), out=O)
        loss = -np.log(O[y, steps]).sum()
        O[y, steps] -= 1.0
        dot(O, H[1:], dVc)
        dH = dot(O.T, Vc[:, :m])
        np.multiply(H[1:, :m], H[1:, :m], D)
        np.subtract(1.0, D, D)
        np.multiply(dH[T - 1], rows_D[T - 1], rows_D[T - 1])
        for t in range(T - 2, -1, -1):  # backward: da_t = (dh_t + W^T da_{t+1}) (1 - h_t^2)
            dot(rows_D[t + 1], W, tmp)
            np.add(tmp, dH[t], tmp)
            np.multiply(tmp, rows_D[t], rows_D[t])
        dot(D.T, H[:T, :m], dW)
        D.sum(axis=0, out=db)
        dE[...] = 0.0
        np.add.at(dE, x, D)
        for p_, g, mem, s in zip(params, grads, mems, scratch):
            np.clip(g, -5, 5, out=g)
            np.multiply(g, g, s)
            mem += s
            np.add(mem, 1e-8, s)
            np.sqrt(s, s)
            np.divide(g, s, s)
            s *= 0.1
            p_ -= s
        return loss

    windows = [(ids[i * T:(i + 1) * T], ids[i * T + 1:(i + 1) * T + 1]) for i in range(100)]
    for x, y in windows:
        update(x, y)
    times = []
    for _ in range(5):
        began = time.perf_counter()
        for i in range(repeats):
            update(*windows[i % 100])
        times.append((time.perf_counter() - began) / repeats)
    return statistics.median(times)


def flops_per_update(K: int, m: int = 100, T: int = 25) -> int:
    """Multiply-adds of the course update's products, times two: the recurrence both ways, the
    logits and their gradients, and dW (the elementwise work is left out)."""
    return 2 * (m * m * T + m * m * (T - 1) + m * m * T + 2 * K * (m + 1) * T + K * m * T)


def gemm_flops_per_second(n: int = 384, repeats: int = 20) -> float:
    """float64 matrix products of n x n, the best of ``repeats``: what BLAS reaches on this
    machine when nothing but arithmetic limits it."""
    import numpy as np

    a, b = np.random.default_rng(0).standard_normal((2, n, n))
    out = np.empty((n, n))
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        np.dot(a, b, out=out)
        best = min(best, time.perf_counter() - began)
    return 2 * n ** 3 / best


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="a text file [default: Tiny Shakespeare "
                        "from the project's shared data folder]")
    parser.add_argument("--updates", type=int, default=20_000, help="updates per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each program")
    args = parser.parse_args(argv)
    data = os.path.abspath(args.data or SHARED_TEXT)
    if not os.path.exists(data):
        parser.error(f"no text at {data}; pass --data FILE")
    rates: Dict[str, List[float]] = {"classic": [], "charrnn": []}
    ratios: List[float] = []
    with tempfile.TemporaryDirectory(prefix="charrnn-seed-") as work:
        script = os.path.join(work, "min_char_rnn.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(CLASSIC)
        for k in range(args.repeats):
            classic = run([sys.executable, script, data, str(args.updates)], work)
            ours = run([sys.executable, "-m", "charrnn", "run", "--data", data, "--iterations",
                        str(args.updates), "--out", os.path.join(work, f"run{k}")], work)
            rates["classic"].append(args.updates / classic)
            rates["charrnn"].append(args.updates / ours)
            ratios.append(classic / ours)
            print(f"run {k + 1}: classic {classic:.1f} s ({rates['classic'][-1]:,.0f} updates/s), "
                  f"charrnn {ours:.1f} s ({rates['charrnn'][-1]:,.0f} updates/s): "
                  f"{ratios[-1]:.2f}x", flush=True)
    floor = floor_update_seconds(data)
    with open(data, encoding="utf-8") as f:
        K = len(set(f.read()))
    bound = flops_per_update(K) / gemm_flops_per_second()
    ours = statistics.median(rates["charrnn"])
    print(f"\n{args.updates:,} updates on {os.path.basename(data)}, whole processes, medians of "
          f"{args.repeats}:")
    print(f"  classic min-char-rnn  {statistics.median(rates['classic']):>8,.0f} updates/s")
    print(f"  charrnn run           {ours:>8,.0f} updates/s")
    print(f"  charrnn/classic: {statistics.median(ratios):.2f}x (median of per-run ratios, "
          f"range {min(ratios):.2f}-{max(ratios):.2f}); target 8x")
    print(f"floor, NumPy calls: the update's calls alone, on preallocated arrays with no framework "
          f"around them: {1 / floor:,.0f} updates/s ({floor * 1e6:.0f} us); charrnn's whole "
          f"process runs at {ours * floor:.0%} of it")
    print(f"floor, arithmetic: {flops_per_update(K) / 1e6:.2f} MFLOP of products per update at "
          f"this machine's float64 matrix-product rate: {1 / bound:,.0f} updates/s "
          f"({bound * 1e6:.0f} us); charrnn's whole process runs at {ours * bound:.0%} of it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
