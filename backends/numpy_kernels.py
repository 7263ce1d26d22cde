"""The NumPy backend's kernels: the built-in models' recurrences, each registered for the
operation it computes faster than the reference (``register_kernels`` in
:mod:`charrnn.backends.numpy_backend`).

Each is the reference's arithmetic, rearranged where it measured faster on the hot path: row
views made once per buffer, preallocated scratch buffers (the backend's ``_tmp``), products in
the orientation BLAS runs fastest, and sigmoid and tanh through one exp. The figures are per
update on the 2-core CPU the project is measured on; ``benchmarks/bench_layout.py`` and
``benchmarks/profile_update.py`` reproduce them.
"""
from __future__ import annotations

import numpy


# -- the vanilla RNN's recurrence --------------------------------------------------------


def rnn_forward(be, Wh, A, H):
    T, B, m = A.shape
    if B != 1:
        _rnn_forward_batch(be, Wh, A, H)
        return
    # One stream: step through cached (m,) vector views, not (1, m) matrices sliced anew;
    # ``Wh.dot(v, out)`` is a matrix-vector product without array-function dispatch. The
    # recurrence takes 1.5x less time so (bench_layout.py: 170 µs against 255 µs).
    tmp = be._tmp("rnn", (m,))
    w_dot, add, tanh = Wh.dot, numpy.add, numpy.tanh
    rows = be._vectors(H)
    for a_t, h_prev, h_t in zip(be._vectors(A), rows, rows[1:]):
        w_dot(h_prev, tmp)
        add(tmp, a_t, h_t)
        tanh(h_t, h_t)


def _rnn_forward_batch(be, Wh, A, H):
    # tanh through exp (see _tanh_): at m=512, B=32, T=64, float32 the forward pass takes
    # 18.8 ms instead of 21.8 (benchmarks/profile_update.py). Batch 1 keeps numpy.tanh, and
    # with it the course configuration's bit-for-bit agreement with charrnn 0.1.0.
    T, B, m = A.shape
    tmp = be._tmp("rnn", (B, m))
    dot, add, tanh, WT = numpy.dot, numpy.add, _tanh_, Wh.T
    rows = be._rows(H)
    with numpy.errstate(over="ignore"):
        for a_t, h_prev, h_t in zip(be._rows(A), rows, rows[1:]):
            dot(h_prev, WT, tmp)
            add(tmp, a_t, h_t)
            tanh(h_t, h_t)


def rnn_backward(be, Wh, H, dH, dA):
    T, B, m = dH.shape
    D = be._tmp("rnn D", (T, B, m))
    Hs = H[1:]
    numpy.multiply(Hs, Hs, out=D)
    numpy.subtract(1.0, D, out=D)  # 1 - h_t**2, for all steps at once
    add, multiply = numpy.add, numpy.multiply
    if B == 1:  # vectors, as in the forward pass
        tmp = be._tmp("rnn", (m,))
        dot = Wh.T.dot  # Wh.T @ v, which is v @ Wh
        dh, d, da = be._vectors(dH), be._vectors(D), be._vectors(dA)
    else:
        tmp = be._tmp("rnn", (B, m))
        dot_, WW = numpy.dot, Wh

        def dot(v, out):
            return dot_(v, WW, out)

        dh, d, da = be._rows(dH), be._rows(D), be._rows(dA)
    multiply(dh[T - 1], d[T - 1], da[T - 1])
    for t in range(T - 2, -1, -1):
        dot(da[t + 1], tmp)
        add(tmp, dh[t], tmp)
        multiply(tmp, d[t], da[t])

# -- activations from exp -----------------------------------------------------------------

# NumPy's tanh is the slowest ufunc on the hot path: on the 2-core CPU the project is
# measured on it takes 4.9 ns per float32 element (21.8 in float64), where exp takes 2.4 (9.7)
# and a multiply 0.2. Written through one exp, sigmoid and tanh cost about 40% less; the
# rounding error they add (a few units in the last place, absolute) is far inside the
# conformance suite's tolerances. exp may overflow to inf for large arguments, which yields
# the right limit (0, or -1 for tanh), so the operations below run under ``errstate``.


def _sigmoid_(x, out):
    """``out = 1 / (1 + exp(-x))``."""
    numpy.negative(x, out=out)
    numpy.exp(out, out=out)
    numpy.add(out, 1.0, out=out)
    numpy.reciprocal(out, out=out)
    return out


def _tanh_(x, out):
    """``out = 2 / (1 + exp(-2x)) - 1``, which is tanh(x)."""
    numpy.multiply(x, -2.0, out=out)
    numpy.exp(out, out=out)
    numpy.add(out, 1.0, out=out)
    numpy.divide(2.0, out, out=out)
    numpy.subtract(out, 1.0, out=out)
    return out

# -- the LSTM's recurrence -----------------------------------------------------------------


def _gate_scale(be, m: int, sigmoid_blocks: int, tanh_blocks: int):
    """The row ``[-1]*sigmoid_blocks*m + [-2]*tanh_blocks*m``: one multiply, one exp and one
    reciprocal then give every gate (sigmoid(z), and sigmoid(2z) for the tanh blocks)."""
    key = ("gate scale", (m, sigmoid_blocks, tanh_blocks))
    scale = be._scratch.get(key)
    if scale is None:
        scale = numpy.concatenate([numpy.full(sigmoid_blocks * m, -1.0),
                                   numpy.full(tanh_blocks * m, -2.0)]).astype(be.dtype)
        be._scratch[key] = scale
    return scale


def lstm_forward(be, Wh, G, H, C):
    # Every step writes into preallocated buffers (no temporaries), and the four gates are
    # activated by five passes over one contiguous (B, 4m) block instead of four passes over
    # strided slices plus a tanh: at 2x256, B=32, T=64, float32 a layer's forward pass takes
    # 29-30 ms instead of 35, of which 26 are its products (benchmarks/profile_update.py).
    T, B, k = G.shape
    m = k // 4
    dot, add, multiply, exp = numpy.dot, numpy.add, numpy.multiply, numpy.exp
    proj, ic = be._tmp("lstm proj", (B, k)), be._tmp("lstm ic", (B, m))
    scale = _gate_scale(be, m, 3, 1)
    with numpy.errstate(over="ignore"):
        for t in range(T):
            g = G[t]
            dot(H[t], Wh, out=proj)
            add(g, proj, out=g)
            multiply(g, scale, out=g)
            exp(g, out=g)
            add(g, 1.0, out=g)
            numpy.reciprocal(g, out=g)  # i, f, o = sigmoid(z); the n block holds sigmoid(2z)
            i, f, o, n = g[:, :m], g[:, m : 2 * m], g[:, 2 * m : 3 * m], g[:, 3 * m :]
            multiply(n, 2.0, out=n)
            numpy.subtract(n, 1.0, out=n)  # n = 2 sigmoid(2z) - 1 = tanh(z)
            c, h = C[t + 1], H[t + 1]
            multiply(f, C[t], out=c)
            multiply(i, n, out=ic)
            add(c, ic, out=c)  # c_t = f c_{t-1} + i n
            _tanh_(c, h)
            multiply(h, o, out=h)  # h_t = o tanh(c_t)


def lstm_backward(be, Wh, G, C, dH, dG):
    # Preallocated buffers, each gate's derivative formed in a contiguous scratch block,
    # tanh(c_t) for all steps in one pass before the loop, and the product below: 17.8 ms a
    # layer against the reference's 21.7 at the size above, in one process.
    T, B, k = G.shape
    m = k // 4
    dot, add, multiply, subtract = numpy.dot, numpy.add, numpy.multiply, numpy.subtract
    TC = be._tmp("lstm tc", (T, B, m))
    with numpy.errstate(over="ignore"):
        _tanh_(C[1:], TC)
    dh, dc, dc_f, a = (be._tmp(f"lstm {name}", (B, m)) for name in ("dh", "dc", "dc f", "a"))
    # The gradient sent back to h_{t-1} is computed transposed, Wh dz_t^T, (m, B): OpenBLAS
    # takes 169 µs for it against 204 for dz_t Wh^T at 32x256 on 2 threads.
    dh_in_T = be._tmp("lstm dh in T", (m, B))
    dh_in = dh_in_T.T
    for t in range(T - 1, -1, -1):
        g, d, tc = G[t], dG[t], TC[t]
        i, f, o, n = g[:, :m], g[:, m : 2 * m], g[:, 2 * m : 3 * m], g[:, 3 * m :]
        di, df, do, dn = d[:, :m], d[:, m : 2 * m], d[:, 2 * m : 3 * m], d[:, 3 * m :]
        if t == T - 1:
            dh[...] = dH[t]
        else:
            add(dH[t], dh_in, out=dh)  # dh = dH[t] + dz_{t+1} Wh^T
        # Each factor is formed in the contiguous scratch ``a`` and written to its strided
        # block of dG once (in-place passes over the strided blocks cost more).
        multiply(tc, tc, out=a)
        subtract(1.0, a, out=a)
        multiply(a, o, out=a)
        multiply(a, dh, out=a)
        if t == T - 1:
            dc[...] = a
        else:
            add(a, dc_f, out=dc)  # dc = dc_{t+1} f_{t+1} + dh o (1 - tanh(c)^2)
        subtract(1.0, o, out=a)
        multiply(a, o, out=a)
        multiply(a, tc, out=a)
        multiply(a, dh, out=do)  # do = dh tanh(c) o (1 - o)
        subtract(1.0, i, out=a)
        multiply(a, i, out=a)
        multiply(a, n, out=a)
        multiply(a, dc, out=di)  # di = dc n i (1 - i)
        subtract(1.0, f, out=a)
        multiply(a, f, out=a)
        multiply(a, C[t], out=a)
        multiply(a, dc, out=df)  # df = dc c_{t-1} f (1 - f)
        multiply(n, n, out=a)
        subtract(1.0, a, out=a)
        multiply(a, i, out=a)
        multiply(a, dc, out=dn)  # dn = dc i (1 - n^2)
        if t:
            multiply(dc, f, out=dc_f)
            dot(Wh, d.T, out=dh_in_T)

# -- the GRU's recurrence ------------------------------------------------------------------


def gru_forward(be, Wh, G, H, RH):
    # As for the LSTM: preallocated buffers, sigmoid and tanh through exp.
    T, B, k = G.shape
    m = k // 3
    # The column blocks as contiguous copies: ``dot(..., out=)`` leaves BLAS for a slower loop
    # when an operand is a strided slice (210 µs against 53 for dn Wh[:, n]^T at 32x256).
    W_ru, W_n = be._copy("gru W ru", Wh[:, : 2 * m]), be._copy("gru W n", Wh[:, 2 * m :])
    dot, add, multiply = numpy.dot, numpy.add, numpy.multiply
    p_ru, p_n = be._tmp("gru ru", (B, 2 * m)), be._tmp("gru n", (B, m))
    with numpy.errstate(over="ignore"):
        for t in range(T):
            g, h, h_new = G[t], H[t], H[t + 1]
            ru, n = g[:, : 2 * m], g[:, 2 * m :]
            dot(h, W_ru, out=p_ru)
            add(ru, p_ru, out=ru)
            _sigmoid_(ru, ru)
            r, u = g[:, :m], g[:, m : 2 * m]
            multiply(r, h, out=RH[t])
            dot(RH[t], W_n, out=p_n)
            add(n, p_n, out=n)
            _tanh_(n, n)
            numpy.subtract(n, h, out=h_new)
            multiply(h_new, u, out=h_new)
            add(h_new, h, out=h_new)  # h_t = h_{t-1} + u (n - h_{t-1})


def gru_backward(be, Wh, G, H, RH, dH, dG):
    # Each factor is formed in a contiguous scratch row block and written to its strided
    # block of dG once; the transposed product (as in lstm_backward) is read once per step.
    T, B, k = G.shape
    m = k // 3
    W_ru = be._copy("gru W ru", Wh[:, : 2 * m])  # contiguous, as in gru_forward
    W_nT = be._copy("gru W n T", Wh[:, 2 * m :].T)
    dot, add, multiply, subtract = numpy.dot, numpy.add, numpy.multiply, numpy.subtract
    dh, drh, a, s, carry = (be._tmp(f"gru {name}", (B, m))
                            for name in ("dh", "drh", "a", "s", "carry"))
    dh_in_T = be._tmp("gru dh in T", (m, B))
    for t in range(T - 1, -1, -1):
        g, d, h_prev = G[t], dG[t], H[t]
        r, u, n = g[:, :m], g[:, m : 2 * m], g[:, 2 * m :]
        dr, du, dn = d[:, :m], d[:, m : 2 * m], d[:, 2 * m :]
        if t == T - 1:
            dh[...] = dH[t]
        else:  # dh (1 - u) + drh r from step t+1, and [dr du] Wh[:, r u]^T
            add(dH[t], carry, out=dh)
            add(dh, dh_in_T.T, out=dh)
        multiply(n, n, out=a)
        subtract(1.0, a, out=a)
        multiply(a, u, out=a)
        multiply(a, dh, out=dn)  # dn = dh u (1 - n^2)
        subtract(1.0, u, out=s)  # 1 - u, used twice
        multiply(s, u, out=a)
        subtract(n, h_prev, out=drh)
        multiply(a, drh, out=a)
        multiply(a, dh, out=du)  # du = dh (n - h_{t-1}) u (1 - u)
        dot(dn, W_nT, out=drh)  # the gradient reaching r * h_{t-1}
        subtract(1.0, r, out=a)
        multiply(a, r, out=a)
        multiply(a, h_prev, out=a)
        multiply(a, drh, out=dr)  # dr = drh h_{t-1} r (1 - r)
        if t:
            dot(W_ru, d[:, : 2 * m].T, out=dh_in_T)
            multiply(s, dh, out=carry)
            multiply(drh, r, out=a)
            add(carry, a, out=carry)


#: The operations these kernels compute, by name.
KERNELS = {
    "rnn.forward": rnn_forward, "rnn.backward": rnn_backward,
    "lstm.forward": lstm_forward, "lstm.backward": lstm_backward,
    "gru.forward": gru_forward, "gru.backward": gru_backward,
}
