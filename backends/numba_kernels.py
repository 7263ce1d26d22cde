"""The NumPy backend's compiled kernels: each recurrence step's elementwise work in one compiled
call, and each optimizer update one pass over the flat arrays.

Compiled with numba (``cache=True``: the first run compiles, later processes load the machine
code from ``__pycache__``). This module imports numba, so it is imported only when a kernel first
runs (see :mod:`charrnn.backends.numpy_backend`, which registers the kernels).

What is compiled, and why that way:

* **The recurrences' matrix products stay in NumPy's BLAS.** numba calls BLAS only through
  SciPy, and OpenBLAS's threaded products are what the step would be built on anyway. A step is
  one product (two for the GRU) and one compiled call that does everything else: the gates, the
  cell and the state, or their gradients, reading each element once. NumPy did the same work in
  about fifteen passes of single-threaded ufuncs over (B, 4m) blocks.
* **One thread for the fused loops; BLAS keeps its threads for the products.** Splitting a
  step's rows over numba's threads (``prange``) measured slower at every size the recipes use:
  starting a parallel region at every step costs more than the step's elementwise work (with
  numba's workqueue layer, nearly four times a 32 x 256 LSTM step's), and with its OpenMP layer
  the threads spin against OpenBLAS's (over ten times).
* **float32 activations are rational functions**, tanh as Eigen computes it (a 13/6 rational
  minimax fit on [-7.9, 7.9], a few float32 ulps from tanh) and sigmoid as ``(1 + tanh(x/2))/2``:
  plain arithmetic, which LLVM vectorizes, where a libm call per element does not. float64 calls
  libm's ``exp`` and ``tanh``, so float64 agrees with the reference to its tolerance of 1e-9.
* **``error_model="numpy"``**: a division by zero gives inf, as in NumPy, instead of a Python
  check per element that keeps the loop from vectorizing.
* **Optimizer updates** do the reference's operations in the reference's order, in the arrays'
  dtype, so in float64 they compute the reference's numbers bit for bit: the course model's
  trajectory is 0.1.0's with these kernels on.
* **The batch-1 recurrence of the vanilla RNN is NumPy's kernel.** Its cost is libm's tanh and
  BLAS's matrix-vector product, which a compiled loop cannot make cheaper without rounding
  differently, and the course model computes what it always did bit for bit
  (``benchmarks/bench_numpy.py`` checks it).
"""
from __future__ import annotations

import math
import time

import numba
import numpy
from numba import njit
from numba.extending import overload

from charrnn.backends import numpy_kernels

_JIT = dict(cache=True, error_model="numpy", nogil=True)

# -- activations, per dtype ----------------------------------------------------------------------

_f32 = numpy.float32
_CLAMP = _f32(7.90531110763549805)
_A1, _A3, _A5, _A7 = (_f32(4.89352455891786e-03), _f32(6.37261928875436e-04),
                      _f32(1.48572235717979e-05), _f32(5.12229709037114e-08))
_A9, _A11, _A13 = (_f32(-8.60467152213735e-11), _f32(2.00018790482477e-13),
                   _f32(-2.76076847742355e-16))
_B0, _B2, _B4, _B6 = (_f32(4.89352518554385e-03), _f32(2.26843463243900e-03),
                      _f32(1.18534705686654e-04), _f32(1.19825839466702e-06))
_HALF32 = _f32(0.5)


def _tanh(x):  # pragma: no cover - replaced by the overload below in compiled code
    return math.tanh(x)


def _sigmoid(x):  # pragma: no cover - replaced by the overload below in compiled code
    return 1.0 / (1.0 + math.exp(-x))


@njit(**_JIT)
def _tanh32(x):
    x = _CLAMP if x > _CLAMP else x
    x = -_CLAMP if x < -_CLAMP else x
    x2 = x * x
    p = _A13
    p = p * x2 + _A11
    p = p * x2 + _A9
    p = p * x2 + _A7
    p = p * x2 + _A5
    p = p * x2 + _A3
    p = p * x2 + _A1
    q = _B6
    q = q * x2 + _B4
    q = q * x2 + _B2
    q = q * x2 + _B0
    return x * p / q


@overload(_tanh)
def _tanh_impl(x):
    if x == numba.float32:
        return lambda x: _tanh32(x)
    return lambda x: math.tanh(x)


@overload(_sigmoid)
def _sigmoid_impl(x):
    if x == numba.float32:
        return lambda x: _HALF32 * _tanh32(_HALF32 * x) + _HALF32
    return lambda x: 1.0 / (1.0 + math.exp(-x))


# -- the LSTM ------------------------------------------------------------------------------------
# Each step works row by row on 1-d views, in short loops that read two or three arrays each:
# LLVM vectorizes those, where one loop over every array of a cell checks too many pairs of
# arrays for overlap and stays scalar (the LSTM's backward step runs four times faster so).
# ``fastmath={"contract"}`` lets a multiply and an add fuse into one rounding.

_STEP = dict(_JIT, fastmath={"contract"})


@njit(**_STEP)
def _lstm_forward_step(g, proj, c_prev, c, h):
    B, m = c.shape
    for b in range(B):
        gb, pb, cb, hb, cpb = g[b], proj[b], c[b], h[b], c_prev[b]
        for k in range(3 * m):
            gb[k] = _sigmoid(gb[k] + pb[k])  # i, f, o
        for k in range(3 * m, 4 * m):
            gb[k] = _tanh(gb[k] + pb[k])  # n
        i, f, o, n = gb[:m], gb[m : 2 * m], gb[2 * m : 3 * m], gb[3 * m :]
        for j in range(m):
            cb[j] = f[j] * cpb[j] + i[j] * n[j]
        for j in range(m):
            hb[j] = o[j] * _tanh(cb[j])
    return 0


@njit(**_STEP)
def _lstm_backward_step(g, c_prev, c, dh_out, dh_in_T, carry, dh, tc, dc, d, first):
    """One step back: ``carry`` holds ``dc_{t+1} f_{t+1}`` and becomes ``dc_t f_t``; ``dh``,
    ``tc`` and ``dc`` are scratch rows."""
    B, m = c.shape
    one = g.dtype.type(1.0)
    for b in range(B):
        dhb, tcb, dcb, gb, db, cb, cpb, cab = dh[b], tc[b], dc[b], g[b], d[b], c[b], c_prev[b], carry[b]
        dob = dh_out[b]
        if first:
            for j in range(m):
                dhb[j] = dob[j]
        else:
            for j in range(m):
                dhb[j] = dob[j] + dh_in_T[j, b]
        for j in range(m):
            tcb[j] = _tanh(cb[j])
        i, f, o, n = gb[:m], gb[m : 2 * m], gb[2 * m : 3 * m], gb[3 * m :]
        di, df, do, dn = db[:m], db[m : 2 * m], db[2 * m : 3 * m], db[3 * m :]
        for j in range(m):
            dcb[j] = dhb[j] * o[j] * (one - tcb[j] * tcb[j])
        if not first:
            for j in range(m):
                dcb[j] += cab[j]
        for j in range(m):
            do[j] = dhb[j] * tcb[j] * o[j] * (one - o[j])
        for j in range(m):
            di[j] = dcb[j] * n[j] * i[j] * (one - i[j])
        for j in range(m):
            df[j] = dcb[j] * cpb[j] * f[j] * (one - f[j])
        for j in range(m):
            dn[j] = dcb[j] * i[j] * (one - n[j] * n[j])
        for j in range(m):
            cab[j] = dcb[j] * f[j]
    return 0


def lstm_forward(be, Wh, G, H, C):
    T, B, k = G.shape
    proj = be._tmp("lstm proj", (B, k))
    dot = numpy.dot
    for t in range(T):
        dot(H[t], Wh, out=proj)
        _lstm_forward_step(G[t], proj, C[t], C[t + 1], H[t + 1])


def lstm_backward(be, Wh, G, C, dH, dG):
    T, B, k = G.shape
    m = k // 4
    carry, dh, tc, dc = (be._tmp(f"lstm {name}", (B, m)) for name in ("carry", "dh", "tc", "dc"))
    dh_in_T = be._tmp("lstm dh in T", (m, B))
    dot = numpy.dot
    for t in range(T - 1, -1, -1):
        d = dG[t]
        _lstm_backward_step(G[t], C[t], C[t + 1], dH[t], dh_in_T, carry, dh, tc, dc, d,
                            t == T - 1)
        if t:
            dot(Wh, d.T, out=dh_in_T)  # transposed, as in the NumPy kernel: faster in OpenBLAS

# -- the GRU -------------------------------------------------------------------------------------


@njit(**_STEP)
def _gru_gates(g, p_ru, h, rh):
    """``[r u] = sigmoid(.)``, and ``r * h_{t-1}``, which the candidate's product reads."""
    B, m = h.shape
    for b in range(B):
        gb, pb, hb, rhb = g[b], p_ru[b], h[b], rh[b]
        for k in range(2 * m):
            gb[k] = _sigmoid(gb[k] + pb[k])
        for j in range(m):
            rhb[j] = gb[j] * hb[j]
    return 0


@njit(**_STEP)
def _gru_state(g, p_n, h, h_new):
    B, m = h.shape
    for b in range(B):
        gb, pb, hb, hnb = g[b], p_n[b], h[b], h_new[b]
        u, n = gb[m : 2 * m], gb[2 * m :]
        for j in range(m):
            n[j] = _tanh(n[j] + pb[j])
        for j in range(m):
            hnb[j] = hb[j] + u[j] * (n[j] - hb[j])
    return 0


def gru_forward(be, Wh, G, H, RH):
    T, B, k = G.shape
    m = k // 3
    W_ru, W_n = be._copy("gru W ru", Wh[:, : 2 * m]), be._copy("gru W n", Wh[:, 2 * m :])
    p_ru, p_n = be._tmp("gru ru", (B, 2 * m)), be._tmp("gru n", (B, m))
    dot = numpy.dot
    for t in range(T):
        dot(H[t], W_ru, out=p_ru)
        _gru_gates(G[t], p_ru, H[t], RH[t])
        dot(RH[t], W_n, out=p_n)
        _gru_state(G[t], p_n, H[t], H[t + 1])


@njit(**_STEP)
def _gru_backward_candidate(g, h_prev, dh_out, carry, dh_in_T, dh, d, dn_c, first):
    """``dh`` for this step, then the candidate's and the update gate's gradients (the
    candidate's also into the contiguous ``dn_c``, which the next product reads)."""
    B, m = h_prev.shape
    one = g.dtype.type(1.0)
    for b in range(B):
        gb, db, dhb, hpb, dob, cab, dnb = g[b], d[b], dh[b], h_prev[b], dh_out[b], carry[b], dn_c[b]
        if first:
            for j in range(m):
                dhb[j] = dob[j]
        else:
            for j in range(m):
                dhb[j] = dob[j] + cab[j] + dh_in_T[j, b]
        u, n = gb[m : 2 * m], gb[2 * m :]
        du, dn = db[m : 2 * m], db[2 * m :]
        for j in range(m):
            dnb[j] = dhb[j] * u[j] * (one - n[j] * n[j])
        for j in range(m):
            dn[j] = dnb[j]
        for j in range(m):
            du[j] = dhb[j] * (n[j] - hpb[j]) * u[j] * (one - u[j])
    return 0


@njit(**_STEP)
def _gru_backward_reset(g, h_prev, drh, dh, d, d_ru, carry):
    """The reset gate's gradient, ``[dr du]`` copied into the contiguous ``d_ru`` (for the
    product sent back), and ``carry``: what reaches ``h_{t-1}`` other than through the gates'
    recurrent product."""
    B, m = h_prev.shape
    one = g.dtype.type(1.0)
    for b in range(B):
        gb, db, hpb, drb, dhb, cab, dru = g[b], d[b], h_prev[b], drh[b], dh[b], carry[b], d_ru[b]
        r, u = gb[:m], gb[m : 2 * m]
        dr = db[:m]
        for j in range(m):
            dr[j] = drb[j] * hpb[j] * r[j] * (one - r[j])
        for k in range(2 * m):
            dru[k] = db[k]
        for j in range(m):
            cab[j] = (one - u[j]) * dhb[j] + drb[j] * r[j]
    return 0


def gru_backward(be, Wh, G, H, RH, dH, dG):
    T, B, k = G.shape
    m = k // 3
    W_ru = be._copy("gru W ru", Wh[:, : 2 * m])
    W_nT = be._copy("gru W n T", Wh[:, 2 * m :].T)
    dh, drh, carry, dn = (be._tmp(f"gru {name}", (B, m))
                          for name in ("dh", "drh", "carry", "dn"))
    d_ru = be._tmp("gru d ru", (B, 2 * m))
    dh_in_T = be._tmp("gru dh in T", (m, B))
    dot = numpy.dot
    for t in range(T - 1, -1, -1):
        g, d, h_prev = G[t], dG[t], H[t]
        _gru_backward_candidate(g, h_prev, dH[t], carry, dh_in_T, dh, d, dn, t == T - 1)
        dot(dn, W_nT, out=drh)  # the gradient reaching r * h_{t-1}
        _gru_backward_reset(g, h_prev, drh, dh, d, d_ru, carry)
        if t:
            dot(W_ru, d_ru.T, out=dh_in_T)

# -- the vanilla RNN, batched ------------------------------------------------------------------


@njit(**_STEP)
def _rnn_forward_step(a, proj, h):
    B, m = h.shape
    for b in range(B):
        ab, pb, hb = a[b], proj[b], h[b]
        for j in range(m):
            hb[j] = _tanh(ab[j] + pb[j])
    return 0


@njit(**_STEP)
def _rnn_backward_step(dh_out, h, proj, da, first):
    B, m = h.shape
    one = h.dtype.type(1.0)
    for b in range(B):
        dob, hb, pb, dab = dh_out[b], h[b], proj[b], da[b]
        if first:
            for j in range(m):
                dab[j] = dob[j] * (one - hb[j] * hb[j])
        else:
            for j in range(m):
                dab[j] = (dob[j] + pb[j]) * (one - hb[j] * hb[j])
    return 0


def rnn_forward(be, Wh, A, H):
    T, B, m = A.shape
    if B == 1:  # the course configuration: see the module's docstring
        return numpy_kernels.rnn_forward(be, Wh, A, H)
    proj = be._tmp("rnn", (B, m))
    # h_{t-1} Wh^T against a contiguous copy of Wh^T: OpenBLAS is slower on the transposed view.
    dot, WT = numpy.dot, be._copy("rnn W T", Wh.T)
    for t in range(T):
        dot(H[t], WT, out=proj)
        _rnn_forward_step(A[t], proj, H[t + 1])
    return None


def rnn_backward(be, Wh, H, dH, dA):
    T, B, m = dH.shape
    if B == 1:
        return numpy_kernels.rnn_backward(be, Wh, H, dH, dA)
    # da_{t+1} Wh in rows: the transposed product is faster in OpenBLAS here too, but reading
    # it back transposed in the step costs more than it saves at m = 512.
    proj = be._tmp("rnn", (B, m))
    dot = numpy.dot
    for t in range(T - 1, -1, -1):
        _rnn_backward_step(dH[t], H[t + 1], proj, dA[t], t == T - 1)
        if t:
            dot(dA[t], Wh, out=proj)
    return None

# -- optimizer updates, one pass each -----------------------------------------------------------


def _clipped(g, clip, lo):
    # NaN stays NaN (both comparisons are false), so a diverged run is still seen as one.
    if clip:
        g = lo if g < lo else g
        g = clip if g > clip else g
    return g


_clipped_jit = njit(**_JIT)(_clipped)


def _adagrad(param, grad, mem, eta, eps, clip, lo):
    for k in range(param.shape[0]):
        g = _clipped_jit(grad[k], clip, lo)
        grad[k] = g
        m = mem[k] + g * g
        mem[k] = m
        param[k] = param[k] - g / math.sqrt(m + eps) * eta
    return 0


def _rmsprop(param, grad, ms, eta, decay, rest, eps, clip, lo):
    for k in range(param.shape[0]):
        g = _clipped_jit(grad[k], clip, lo)
        grad[k] = g
        s = ms[k] * decay + g * g * rest
        ms[k] = s
        param[k] = param[k] - g / (math.sqrt(s) + eps) * eta
    return 0


def _adam(param, grad, m, v, beta1, rest1, beta2, rest2, inv_root2, eps, scale, clip, lo):
    for k in range(param.shape[0]):
        g = _clipped_jit(grad[k], clip, lo)
        grad[k] = g
        mk = m[k] * beta1 + g * rest1
        m[k] = mk
        vk = v[k] * beta2 + g * g * rest2
        v[k] = vk
        param[k] = param[k] - mk / (math.sqrt(vk) * inv_root2 + eps) * scale
    return 0


def _sgd(param, grad, eta, clip, lo):
    for k in range(param.shape[0]):
        g = _clipped_jit(grad[k], clip, lo)
        grad[k] = g
        param[k] = param[k] - eta * g
    return 0


_ADAGRAD, _RMSPROP, _ADAM, _SGD = (njit(**_JIT)(f) for f in (_adagrad, _rmsprop, _adam, _sgd))


def _flat(a):
    """``a`` as a contiguous 1-d array, and whether it is a copy to write back (the sparse
    updates pass row blocks, which are contiguous 2-d; anything else is copied)."""
    if a.flags.c_contiguous:
        return a.reshape(-1), False
    return numpy.ascontiguousarray(a).reshape(-1), True


def _run(kernel, arrays, scalars) -> None:
    """``kernel`` on ``arrays`` (the first sets the dtype of ``scalars``)."""
    flat = [_flat(a) for a in arrays]
    c = arrays[0].dtype.type
    kernel(*(f for f, _ in flat), *(c(s) for s in scalars))
    for a, (f, copied) in zip(arrays, flat):
        if copied:
            a[...] = f.reshape(a.shape)


def adagrad_update(be, param, grad, mem, eta, eps, clip, scratch):
    _run(_ADAGRAD, (param, grad, mem), (eta, eps, clip, -clip))


def rmsprop_update(be, param, grad, ms, eta, decay, eps, clip, scratch):
    _run(_RMSPROP, (param, grad, ms), (eta, decay, 1.0 - decay, eps, clip, -clip))


def adam_update(be, param, grad, m, v, eta, beta1, beta2, eps, step, clip, scratch):
    correction1 = 1.0 - beta1 ** step
    correction2 = 1.0 - beta2 ** step
    _run(_ADAM, (param, grad, m, v), (beta1, 1.0 - beta1, beta2, 1.0 - beta2,
                                      1.0 / correction2 ** 0.5, eps, eta / correction1, clip,
                                      -clip))


def sgd_update(be, param, grad, eta, clip=0.0):
    _run(_SGD, (param, grad), (eta, clip, -clip))


def _compile_timed(kernel):
    """``kernel``, whose first call per dtype in this process (when numba compiles, or loads
    from its cache, what it calls) is added to the backend's ``compile_seconds``: the trainer
    does not count it as training time."""
    seen = set()

    def timed(be, *args):
        dtype = be.dtype
        if dtype in seen:
            return kernel(be, *args)
        began = time.perf_counter()
        kernel(be, *args)
        seen.add(dtype)
        # getattr: a subclass written before this attribute may not call Backend.__init__.
        be.compile_seconds = getattr(be, "compile_seconds", 0.0) + time.perf_counter() - began
        return None

    timed.__name__ = timed.__qualname__ = kernel.__name__
    timed.__doc__ = kernel.__doc__
    return timed


#: The operations these kernels compute, by name.
KERNELS = {name: _compile_timed(kernel) for name, kernel in {
    "rnn.forward": rnn_forward, "rnn.backward": rnn_backward,
    "lstm.forward": lstm_forward, "lstm.backward": lstm_backward,
    "gru.forward": gru_forward, "gru.backward": gru_backward,
    "adagrad.update": adagrad_update, "rmsprop.update": rmsprop_update,
    "adam.update": adam_update, "sgd.update": sgd_update,
}.items()}
