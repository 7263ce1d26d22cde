"""charrnn 0.1.0's vanilla RNN, AdaGrad and update, kept verbatim as a reference.

The tests in test_compat_v010.py check that the rnn model at batch 1 computes what 0.1.0 computed
(loss and gradients to a relative 1e-12) and trains to the same smooth loss. The code below is
0.1.0's (framework/model.py, framework/backend.py, backends/numpy_backend.py,
optimizers/adagrad.py and Trainer.train_step, release commit 09792a0), with only what it needs
of the rest inlined and its imports adjusted; it is not used by charrnn itself.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy

Array = Any
Backend = Any  # 0.1.0's type hints name its Backend class


class LegacyBackend:
    """Base class for array backends.

    Subclasses set :attr:`name` (what ``--backend`` takes) and :attr:`xp`. Capability flags in
    :attr:`capabilities` let a backend declare what it does not support (for example
    ``{"float64": False}``); the conformance suite skips those cases instead of failing them.
    """

    name: ClassVar[str] = "base"
    xp: ClassVar[Any] = numpy
    capabilities: ClassVar[Dict[str, bool]] = {}

    def __init__(self, dtype: str = "float64") -> None:
        self.check_available()
        self.dtype = numpy.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"dtype must be a floating type, got {dtype}")

    # -- availability and capabilities -------------------------------------------------------

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`charrnn.errors.BackendUnavailable` with a fix when this cannot run."""

    @classmethod
    def supports(cls, capability: str) -> bool:
        return cls.capabilities.get(capability, True)

    @classmethod
    def describe(cls) -> str:
        """One line on the device this backend computes on, for logs and reports."""
        return cls.name

    # -- moving data -------------------------------------------------------------------------

    def asarray(self, data: Any, dtype: Any = None) -> Array:
        return self.xp.asarray(data, dtype=dtype)

    def to_numpy(self, array: Array) -> numpy.ndarray:
        return numpy.asarray(array)

    def to_float(self, scalar: Any) -> float:
        """A device scalar to a Python float: the one place a loss reaches the host."""
        return float(scalar)

    def zeros(self, shape: Sequence[int] | int, dtype: Any = None) -> Array:
        return self.xp.zeros(shape, dtype=self.dtype if dtype is None else dtype)

    def synchronize(self) -> None:
        """Wait for queued device work, so that timings mean something."""

    # -- the operations the model is written against ------------------------------------------

    def rnn_forward(self, W: Array, A_in: Array, H: Array, tmp: Array) -> Array:
        """The recurrence ``H[t+1] = tanh(W @ H[t] + A_in[t])``; ``H[0]`` holds the incoming state.

        ``A_in`` (T, m) already holds the input projection and bias. ``H`` (T+1, m) is written in
        place from row 1; ``tmp`` (m,) is scratch. Only this loop and its backward twin step
        through time.
        """
        # Iterating rows and passing ``out`` positionally keeps the per-step Python overhead low:
        # at m=100 each step's arithmetic costs about as much as the calls that launch it.
        dot, add, tanh = self.xp.dot, self.xp.add, self.xp.tanh
        for a_t, h_prev, h_t in zip(A_in, H[:-1], H[1:]):
            dot(W, h_prev, tmp)
            add(tmp, a_t, h_t)
            tanh(h_t, h_t)
        return H

    def rnn_backward(self, W: Array, D: Array, dH: Array, dA: Array, tmp: Array) -> Array:
        """Back-propagate through the recurrence.

        ``D`` (T, m) is ``1 - H**2``; ``dH`` (T, m) the loss gradient reaching each hidden state
        from the output layer. Writes and returns ``dA`` (T, m), the gradient at each
        pre-activation: ``dA[t] = (dH[t] + W.T @ dA[t+1]) * D[t]``.
        """
        dot, add, multiply = self.xp.dot, self.xp.add, self.xp.multiply
        T = dH.shape[0]
        multiply(dH[T - 1], D[T - 1], dA[T - 1])
        for t in range(T - 2, -1, -1):
            dot(dA[t + 1], W, tmp)
            add(tmp, dH[t], tmp)
            multiply(tmp, D[t], dA[t])
        return dA

    def softmax(self, O: Array, axis: int = -1) -> Array:
        """Softmax along ``axis``, stable against overflow; overwrites and returns ``O``."""
        xp = self.xp
        O -= O.max(axis=axis, keepdims=True)
        xp.exp(O, out=O)
        O /= O.sum(axis=axis, keepdims=True)
        return O

    def segment_sum(self, ids: Array, values: Array, out: Array) -> Array | None:
        """``out[k] = sum of values[t] where ids[t] == k``; rows of ``out`` no id names are zero.

        This is the gradient of a row gather (the input projection ``U[:, x]``). A backend that
        learns the distinct ids cheaply along the way returns them, sorted, so optimizers can
        skip the rows that stayed zero; one that would need a device-to-host sync to know them
        returns None.
        """
        out[...] = 0
        self.xp.add.at(out, ids, values)
        return None

    def clip_(self, x: Array, lo: float, hi: float) -> None:
        self.xp.clip(x, lo, hi, out=x)

    def sgd_(self, param: Array, grad: Array, eta: float) -> None:
        """``param -= eta * grad`` in place."""
        param -= eta * grad

    def adagrad_(self, param: Array, grad: Array, mem: Array, eta: float, eps: float,
                 scratch: Array) -> None:
        """AdaGrad in place: ``mem += grad**2; param -= eta * grad / sqrt(mem + eps)``.

        ``scratch`` has ``param``'s shape; reusing it avoids allocating (and, for large arrays,
        page-faulting in) fresh temporaries every update.
        """
        xp = self.xp
        xp.multiply(grad, grad, scratch)
        xp.add(mem, scratch, mem)
        xp.add(mem, eps, scratch)
        xp.sqrt(scratch, scratch)
        xp.divide(grad, scratch, scratch)
        xp.multiply(scratch, eta, scratch)
        xp.subtract(param, scratch, param)


class LegacyNumpyBackend(LegacyBackend):
    name = "numpy"
    xp = numpy

    #: How many distinct arrays' row views are kept; the model reuses a handful of buffers.
    ROW_CACHE_SIZE = 32

    def __init__(self, dtype: str = "float64") -> None:
        super().__init__(dtype)
        self._row_cache: Dict[int, Tuple[numpy.ndarray, List[numpy.ndarray]]] = {}

    def _rows(self, a: numpy.ndarray) -> List[numpy.ndarray]:
        """Row views of ``a``, made once per buffer.

        At m=100 a recurrence step costs about 2 µs, so creating three view objects per step
        is a measurable share. The cache holds the array itself, so an id is never reused for
        another array while its entry lives.
        """
        hit = self._row_cache.get(id(a))
        if hit is None or hit[0] is not a:
            if len(self._row_cache) >= self.ROW_CACHE_SIZE:
                self._row_cache.clear()
            hit = (a, list(a))
            self._row_cache[id(a)] = hit
        return hit[1]

    def rnn_forward(self, W, A_in, H, tmp):
        # ``W.dot`` skips the array-function dispatch that ``numpy.dot`` goes through.
        w_dot, add, tanh = W.dot, numpy.add, numpy.tanh
        rows = self._rows(H)
        for a_t, h_prev, h_t in zip(self._rows(A_in), rows, rows[1:]):
            w_dot(h_prev, tmp)
            add(tmp, a_t, h_t)
            tanh(h_t, h_t)
        return H

    def rnn_backward(self, W, D, dH, dA, tmp):
        add, multiply = numpy.add, numpy.multiply
        WT_dot = W.T.dot  # W.T @ v, which is v @ W
        dh, d, da = self._rows(dH), self._rows(D), self._rows(dA)
        T = len(da)
        multiply(dh[T - 1], d[T - 1], da[T - 1])
        for t in range(T - 2, -1, -1):
            WT_dot(da[t + 1], tmp)
            add(tmp, dh[t], tmp)
            multiply(tmp, d[t], da[t])
        return dA

    def segment_sum(self, ids, values, out):
        # A one-hot product beats ``numpy.add.at`` by about 2x for a sequence's worth of ids;
        # the distinct ids, which the optimizer's sparse update needs, cost one mask more.
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




PARAM_NAMES = ("b", "c", "U", "V", "W")


class GradientSupport(NamedTuple):
    """Where a flat gradient can be non-zero: entries ``[0, dense)``, and after them, of the
    ``row_size``-wide rows that follow, only ``rows``.

    A hint for optimizers whose update is zero where the gradient is zero (SGD, AdaGrad): they
    can skip the rest exactly. Others ignore it.
    """

    dense: int
    row_size: int
    rows: Array


def param_shapes(vocab_size: int, hidden: int) -> Dict[str, Tuple[int, ...]]:
    K, m = vocab_size, hidden
    return {"b": (m,), "c": (K,), "U": (m, K), "V": (K, m), "W": (m, m)}


def init_params(vocab_size: int, hidden: int, sigma: float, seed: int) -> Dict[str, numpy.ndarray]:
    """Host-side initialisation, so that every backend starts from the same numbers.

    Weights are ``randn * sigma`` drawn in the assignment's order (U, W, V); biases are zero.
    """
    rng = numpy.random.default_rng(seed)
    shapes = param_shapes(vocab_size, hidden)
    out = {name: numpy.zeros(shape) for name, shape in shapes.items()}
    for name in ("U", "W", "V"):
        out[name] = rng.standard_normal(shapes[name]) * sigma
    return out


class _Views(dict):
    """Named views into one flat array, laid out for the hot path.

    ``Vc`` (K, m+1) holds V with c as its last column, so that one product with the hidden states
    (padded with a column of ones) gives the logits, and one gives dV and dc together. ``Ut``
    (K, m) is U stored transposed, so the input projection gathers contiguous rows and dU is a
    segment sum of rows; it comes last, after the parameters whose gradients are always dense,
    so an optimizer can skip its rows that no character of the sequence touched. Users, checks
    and checkpoints see the assignment's names and shapes (``b c U V W``) as views.
    """

    def __init__(self, flat: Array, vocab_size: int, hidden: int):
        super().__init__()
        K, m = vocab_size, hidden
        self.flat = flat
        offset = 0
        for name, shape in (("Vc", (K, m + 1)), ("W", (m, m)), ("b", (m,)), ("Ut", (K, m))):
            size = math.prod(shape)
            self[name] = flat[offset : offset + size].reshape(shape)
            offset += size
        #: Entries [0, dense) have dense gradients; the rest are the rows of ``Ut``.
        self.dense = offset - K * m
        self["V"] = self["Vc"][:, :m]
        self["c"] = self["Vc"][:, m]
        self["U"] = self["Ut"].T


class RNN:
    """Parameters, gradients and scratch space of one vanilla RNN on one backend."""

    def __init__(self, backend: Backend, vocab_size: int, hidden: int,
                 params: Dict[str, numpy.ndarray] | None = None, *, sigma: float = 0.01,
                 seed: int = 0) -> None:
        self.backend = backend
        self.K = vocab_size
        self.m = hidden
        self.shapes = param_shapes(vocab_size, hidden)
        self.size = sum(math.prod(s) for s in self.shapes.values())
        self.params = _Views(backend.zeros(self.size), vocab_size, hidden)
        self.grads = _Views(backend.zeros(self.size), vocab_size, hidden)
        #: Where the last gradient can be non-zero (see :class:`GradientSupport`), or None.
        self.support: GradientSupport | None = None
        if params is None:
            params = init_params(vocab_size, hidden, sigma, seed)
        self.set_params(params)
        self._scratch: Dict[int, Dict[str, Array]] = {}

    # -- parameters on the host --------------------------------------------------------------

    def set_params(self, params: Dict[str, Any]) -> None:
        for name in PARAM_NAMES:
            value = numpy.asarray(params[name])
            if value.shape != self.shapes[name]:
                raise ValueError(
                    f"parameter {name} has shape {value.shape}, expected {self.shapes[name]}"
                )
            self.params[name][...] = self.backend.asarray(value, dtype=self.backend.dtype)

    def get_params(self) -> Dict[str, numpy.ndarray]:
        return {name: self.backend.to_numpy(self.params[name]).copy() for name in PARAM_NAMES}

    def split_flat(self, flat: Any) -> Dict[str, numpy.ndarray]:
        """A flat array laid out like the parameters (an optimizer's state, say), by name."""
        views = _Views(numpy.asarray(flat), self.K, self.m)
        return {name: views[name].copy() for name in PARAM_NAMES}

    def get_grads(self) -> Dict[str, numpy.ndarray]:
        return {name: self.backend.to_numpy(self.grads[name]).copy() for name in PARAM_NAMES}

    # -- training ----------------------------------------------------------------------------

    def _buffers(self, T: int) -> Dict[str, Array]:
        """Scratch arrays for sequences of length T, allocated once and reused every update."""
        buf = self._scratch.get(T)
        if buf is None:
            z, m = self.backend.zeros, self.m
            # H1[t] is [h_{t-1}, 1]: row 0 the incoming state, rows 1.. the states the sequence
            # produces. The column of ones turns "add the bias" into part of a product, and the
            # previous-state matrix dW needs is the view H[:-1], not a copy.
            H1 = z((T + 1, m + 1))
            H1[:, m] = 1.0
            buf = {
                "H1": H1, "H": H1[:, :m], "HT1": z((m + 1, T)), "OT": z((self.K, T)),
                "A": z((T, m)), "dH": z((T, m)), "D": z((T, m)), "dA": z((T, m)),
                "tmp": z(m), "cols": self.backend.xp.arange(T),
            }
            self._scratch[T] = buf
        return buf

    def loss_and_grads(self, x: Array, y: Array, h0: Array) -> Tuple[Any, Array]:
        """Forward and backward over one sequence.

        ``x`` and ``y`` are integer id arrays of equal length T on the device; ``h0`` (m,) is the
        carried hidden state. Fills :attr:`grads` (unclipped) and :attr:`support`, and returns
        the summed cross-entropy as a device scalar and a copy of the last hidden state.
        """
        be, xp = self.backend, self.backend.xp
        p, g = self.params, self.grads
        buf = self._buffers(x.shape[0])
        H, D, dH, dA, cols = buf["H"], buf["D"], buf["dH"], buf["dA"], buf["cols"]

        PT = self._forward(x, h0, buf)  # (K, T): column t is p_t
        loss = -xp.log(PT[y, cols]).sum()

        # Backward: the output layer for all steps at once; PT becomes dO^T in place.
        PT[y, cols] -= 1.0
        xp.dot(PT, buf["H1"][1:], out=g["Vc"])  # [dV | dc] in one product
        xp.dot(PT.T, p["V"], out=dH)
        Hs = H[1:]
        xp.multiply(Hs, Hs, out=D)
        xp.subtract(1.0, D, out=D)
        be.rnn_backward(p["W"], D, dH, dA, buf["tmp"])
        xp.dot(dA.T, H[:-1], out=g["W"])
        xp.sum(dA, axis=0, out=g["b"])
        rows = be.segment_sum(x, dA, g["Ut"])
        self.support = None if rows is None else GradientSupport(g.dense, self.m, rows)
        return loss, H[-1].copy()

    def loss(self, x: Array, y: Array, h0: Array, return_hidden: bool = False):
        """The summed cross-entropy only, as a host float (for checks and evaluation).

        With ``return_hidden`` also returns a copy of the last hidden state, so that a long text
        can be read in chunks.
        """
        buf = self._buffers(x.shape[0])
        PT = self._forward(x, h0, buf)
        loss = self.backend.to_float(-self.backend.xp.log(PT[y, buf["cols"]]).sum())
        if return_hidden:
            return loss, buf["H"][-1].copy()
        return loss

    def _forward(self, x: Array, h0: Array, buf: Dict[str, Array]) -> Array:
        """Input projection as a row gather, the recurrence, then the output layer for all steps.

        Returns the probabilities transposed, (K, T): the logits come from ``Vc @ [H, 1]^T``
        with both operands contiguous, which BLAS runs markedly faster at this size than a
        product with a transposed right-hand operand.
        """
        be, xp, p = self.backend, self.backend.xp, self.params
        xp.add(p["Ut"][x], p["b"], out=buf["A"])
        H = buf["H"]
        H[0] = h0
        be.rnn_forward(p["W"], buf["A"], H, buf["tmp"])
        HT1, OT = buf["HT1"], buf["OT"]
        HT1[...] = buf["H1"][1:].T
        xp.dot(p["Vc"], HT1, out=OT)
        return be.softmax(OT, axis=0)

    def step_hidden(self, h: Array, x_id: int) -> Tuple[Array, Array]:
        """One step of generation: the next hidden state and the output logits."""
        xp = self.backend.xp
        p = self.params
        h = xp.tanh(p["W"] @ h + p["U"][:, x_id] + p["b"])
        return h, p["V"] @ h + p["c"]


class Optimizer:
    """Base class. Subclasses set :attr:`name` (what ``--optimizer`` takes) and :meth:`step`."""

    name: ClassVar[str] = "base"

    def __init__(self, backend: Backend, size: int, eta: float) -> None:
        self.backend = backend
        self.size = size
        self.eta = float(eta)

    def step(self, params: Array, grads: Array, support: Optional[GradientSupport] = None) -> None:
        """Update ``params`` in place from ``grads`` (both flat, on the backend's device).

        ``support``, when given, says where ``grads`` can be non-zero. An optimizer whose update
        is exactly zero for a zero gradient may skip the rest; any other must ignore it.
        """
        raise NotImplementedError

    @staticmethod
    def sparse_parts(support: GradientSupport, *flats: Array) -> Tuple[List[Array], List[Array]]:
        """For each flat array: its dense prefix (a view) and the matrix of its rows (a view)
        that ``support.rows`` indexes."""
        d, r = support.dense, support.row_size
        return [f[:d] for f in flats], [f[d:].reshape(-1, r) for f in flats]

    def state_dict(self) -> Dict[str, Any]:
        """Host copies of everything :meth:`load_state_dict` needs to continue exactly."""
        return {"eta": self.eta}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.eta = float(state["eta"])

    def _load_array(self, state: Dict[str, Any], key: str) -> Array:
        value = numpy.array(state[key])  # a copy: the caller's dict must not alias our state
        if value.shape != (self.size,):
            raise ValueError(f"optimizer state {key!r} has shape {value.shape}, expected ({self.size},)")
        return self.backend.asarray(value, dtype=self.backend.dtype)


class AdaGrad(Optimizer):
    name = "adagrad"

    def __init__(self, backend, size: int, eta: float, eps: float = 1e-8) -> None:
        super().__init__(backend, size, eta)
        self.eps = float(eps)
        self.mem = backend.zeros(size)
        self._scratch = backend.zeros(size)

    def step(self, params, grads, support=None) -> None:
        be = self.backend
        if support is None:
            be.adagrad_(params, grads, self.mem, self.eta, self.eps, self._scratch)
            return
        # A zero gradient changes neither m nor theta: update the dense part and the touched
        # rows only (for a text, most rows of U are untouched by any one sequence).
        (p, g, m, s), (P, G, M, _) = self.sparse_parts(support, params, grads, self.mem,
                                                       self._scratch)
        be.adagrad_(p, g, m, self.eta, self.eps, s)
        rows = support.rows
        p_rows, m_rows = P[rows], M[rows]
        be.adagrad_(p_rows, G[rows], m_rows, self.eta, self.eps, be.zeros(p_rows.shape))
        P[rows] = p_rows
        M[rows] = m_rows

    def state_dict(self) -> Dict[str, Any]:
        return {"eta": self.eta, "eps": self.eps, "mem": self.backend.to_numpy(self.mem).copy()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.eps = float(state["eps"])
        self.mem = self._load_array(state, "mem")




# -- 0.1.0's Trainer.train_step, as a loop over one text --------------------------------------

SMOOTHING = 0.999
CLIP = 5.0


def train(ids: numpy.ndarray, hidden: int, seq_length: int, updates: int, eta: float = 0.1,
          sigma: float = 0.01, seed: int = 0, vocab_size: Optional[int] = None,
          trajectory: Optional[List[float]] = None, every: int = 500) -> Tuple[float, RNN]:
    """0.1.0's training loop: ``updates`` AdaGrad updates from its initialisation; returns the
    smooth loss and the model. The smooth loss after every ``every`` updates is appended to
    ``trajectory`` when one is given (not part of 0.1.0: how its trajectory is recorded)."""
    backend = LegacyNumpyBackend("float64")
    K = int(ids.max()) + 1 if vocab_size is None else vocab_size
    model = RNN(backend, K, hidden, sigma=sigma, seed=seed)
    optimizer = AdaGrad(backend, model.size, eta)
    ids = backend.asarray(ids)
    n, T = int(ids.shape[0]), seq_length
    position, h = 0, backend.zeros(hidden)
    smooth = T * math.log(K)
    for _ in range(updates):
        if position + T + 1 > n:
            position = 0
            h = backend.zeros(hidden)
        p = position
        loss, h = model.loss_and_grads(ids[p : p + T], ids[p + 1 : p + T + 1], h)
        grads = model.grads.flat
        backend.clip_(grads, -CLIP, CLIP)
        optimizer.step(model.params.flat, grads, model.support)
        position = p + T
        smooth = SMOOTHING * smooth + (1.0 - SMOOTHING) * loss
        if trajectory is not None and (_ + 1) % every == 0:
            trajectory.append(float(smooth))
    return float(smooth), model
