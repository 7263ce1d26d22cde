"""The NumPy backend's compiled kernels: each recurrence step's elementwise work fused into one
loop, threaded over the batch, and each optimizer update one pass over the flat arrays.

Compiled with numba (``cache=True``: the first run compiles, later processes load the machine
code from ``__pycache__``). This module imports numba, so it is imported only when a kernel first
runs (see :mod:`charrnn.backends.numpy_backend`, which registers the kernels).

What is compiled, and why that way:

* **The recurrences' matrix products stay in NumPy's BLAS.** numba calls BLAS only through
  SciPy, and OpenBLAS's threaded products are what the step would be built on anyway. A step is
  one product (two for the GRU) and one compiled call that does everything else: the gates, the
  cell and the state, or their gradients, reading each element once. NumPy did the same work in
  about fifteen passes of single-threaded ufuncs over (B, 4m) blocks.
* **Rows of the batch run on numba's threads** (``prange``) when the batch has several; the
  sequence stays a Python loop because step ``t`` needs step ``t - 1``'s product.
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


@njit(**_JIT)
def _lstm_forward_step(g, proj, c_prev, c, h):
    B, m = c.shape
    for b in range(B):
        for k in range(3 * m):
            g[b, k] = _sigmoid(g[b, k] + proj[b, k])  # i, f, o
        for k in range(3 * m, 4 * m):
            g[b, k] = _tanh(g[b, k] + proj[b, k])  # n
        for j in range(m):
            cell = g[b, m + j] * c_prev[b, j] + g[b, j] * g[b, 3 * m + j]
            c[b, j] = cell
            h[b, j] = g[b, 2 * m + j] * _tanh(cell)
    return 0


@njit(**_JIT)
def _lstm_backward_step(g, c_prev, c, dh_out, dh_in_T, carry, dh, d, first):
    """One step back: ``carry`` holds ``dc_{t+1} f_{t+1}`` and becomes ``dc_t f_t``."""
    B, m = c.shape
    one = g.dtype.type(1.0)
    for b in range(B):
        if first:
            for j in range(m):
                dh[b, j] = dh_out[b, j]
        else:
            for j in range(m):
                dh[b, j] = dh_out[b, j] + dh_in_T[j, b]
        for j in range(m):
            i, f, o, n = g[b, j], g[b, m + j], g[b, 2 * m + j], g[b, 3 * m + j]
            tc = _tanh(c[b, j])
            grad = dh[b, j]
            dc = grad * o * (one - tc * tc)
            if not first:
                dc += carry[b, j]
            d[b, j] = dc * n * i * (one - i)
            d[b, m + j] = dc * c_prev[b, j] * f * (one - f)
            d[b, 2 * m + j] = grad * tc * o * (one - o)
            d[b, 3 * m + j] = dc * i * (one - n * n)
            carry[b, j] = dc * f
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
    carry, dh = be._tmp("lstm carry", (B, m)), be._tmp("lstm dh", (B, m))
    dh_in_T = be._tmp("lstm dh in T", (m, B))
    dot = numpy.dot
    for t in range(T - 1, -1, -1):
        d = dG[t]
        _lstm_backward_step(G[t], C[t], C[t + 1], dH[t], dh_in_T, carry, dh, d, t == T - 1)
        if t:
            dot(Wh, d.T, out=dh_in_T)  # transposed, as in the NumPy kernel: faster in OpenBLAS

# -- the GRU -------------------------------------------------------------------------------------


@njit(**_JIT)
def _gru_gates(g, p_ru, h, rh):
    """``[r u] = sigmoid(.)``, and ``r * h_{t-1}``, which the candidate's product reads."""
    B, m = h.shape
    for b in range(B):
        for k in range(2 * m):
            g[b, k] = _sigmoid(g[b, k] + p_ru[b, k])
        for j in range(m):
            rh[b, j] = g[b, j] * h[b, j]
    return 0


@njit(**_JIT)
def _gru_state(g, p_n, h, h_new):
    B, m = h.shape
    for b in range(B):
        for j in range(m):
            g[b, 2 * m + j] = _tanh(g[b, 2 * m + j] + p_n[b, j])
        for j in range(m):
            h_new[b, j] = h[b, j] + g[b, m + j] * (g[b, 2 * m + j] - h[b, j])
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


@njit(**_JIT)
def _gru_backward_candidate(g, h_prev, dh_out, carry, dh_in_T, dh, d, first):
    """``dh`` for this step, then the candidate's and the update gate's gradients."""
    B, m = h_prev.shape
    one = g.dtype.type(1.0)
    for b in range(B):
        if first:
            for j in range(m):
                dh[b, j] = dh_out[b, j]
        else:
            for j in range(m):
                dh[b, j] = dh_out[b, j] + carry[b, j] + dh_in_T[j, b]
        for j in range(m):
            u, n, grad = g[b, m + j], g[b, 2 * m + j], dh[b, j]
            d[b, 2 * m + j] = grad * u * (one - n * n)
            d[b, m + j] = grad * (n - h_prev[b, j]) * u * (one - u)
    return 0


@njit(**_JIT)
def _gru_backward_reset(g, h_prev, drh, dh, d, carry):
    """The reset gate's gradient, and ``carry``: what reaches ``h_{t-1}`` other than through
    the gates' recurrent product."""
    B, m = h_prev.shape
    one = g.dtype.type(1.0)
    for b in range(B):
        for j in range(m):
            r, u = g[b, j], g[b, m + j]
            d[b, j] = drh[b, j] * h_prev[b, j] * r * (one - r)
            carry[b, j] = (one - u) * dh[b, j] + drh[b, j] * r
    return 0


def gru_backward(be, Wh, G, H, RH, dH, dG):
    T, B, k = G.shape
    m = k // 3
    W_ru = be._copy("gru W ru", Wh[:, : 2 * m])
    W_nT = be._copy("gru W n T", Wh[:, 2 * m :].T)
    dh, drh, carry = (be._tmp(f"gru {name}", (B, m)) for name in ("dh", "drh", "carry"))
    dh_in_T = be._tmp("gru dh in T", (m, B))
    dot = numpy.dot
    for t in range(T - 1, -1, -1):
        g, d, h_prev = G[t], dG[t], H[t]
        _gru_backward_candidate(g, h_prev, dH[t], carry, dh_in_T, dh, d, t == T - 1)
        dot(d[:, 2 * m :], W_nT, out=drh)  # the gradient reaching r * h_{t-1}
        _gru_backward_reset(g, h_prev, drh, dh, d, carry)
        if t:
            dot(W_ru, d[:, : 2 * m].T, out=dh_in_T)

# -- the vanilla RNN, batched ------------------------------------------------------------------


@njit(**_JIT)
def _rnn_forward_step(a, proj, h):
    B, m = h.shape
    for b in range(B):
        for j in range(m):
            h[b, j] = _tanh(a[b, j] + proj[b, j])
    return 0


@njit(**_JIT)
def _rnn_backward_step(dh_out, h, proj, da, first):
    B, m = h.shape
    one = h.dtype.type(1.0)
    for b in range(B):
        for j in range(m):
            grad = dh_out[b, j] if first else dh_out[b, j] + proj[b, j]
            da[b, j] = grad * (one - h[b, j] * h[b, j])
    return 0


def rnn_forward(be, Wh, A, H):
    T, B, m = A.shape
    if B == 1:  # the course configuration: see the module's docstring
        return numpy_kernels.rnn_forward(be, Wh, A, H)
    proj = be._tmp("rnn", (B, m))
    dot, WT = numpy.dot, Wh.T
    for t in range(T):
        dot(H[t], WT, out=proj)
        _rnn_forward_step(A[t], proj, H[t + 1])
    return None


def rnn_backward(be, Wh, H, dH, dA):
    T, B, m = dH.shape
    if B == 1:
        return numpy_kernels.rnn_backward(be, Wh, H, dH, dA)
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
        be.compile_seconds += time.perf_counter() - began
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
