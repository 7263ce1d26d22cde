"""AdaGrad as in the course assignment: ``m += g**2; theta -= eta * g / sqrt(m + eps)``."""
from __future__ import annotations

from typing import Any, Dict

from charrnn import hookimpl
from charrnn.kernels import Case, Operation, Sizes, gradient, stale
from charrnn.optimizer import Optimizer


def adagrad_update(be, param, grad, mem, eta: float, eps: float, clip: float, scratch) -> None:
    """``g = clip(grad)`` (in place; clip 0 leaves it); ``mem += g**2``;
    ``param -= eta * g / sqrt(mem + eps)``. ``scratch`` has ``param``'s shape and arrives
    holding stale data: it is written before it is read."""
    xp = be.xp
    if clip:
        be.clip_(grad, -clip, clip)
    xp.multiply(grad, grad, scratch)
    xp.add(mem, scratch, mem)
    xp.add(mem, eps, scratch)
    xp.sqrt(scratch, scratch)
    xp.divide(grad, scratch, scratch)
    xp.multiply(scratch, eta, scratch)
    xp.subtract(param, scratch, param)


def _case(rng, sizes: Sizes, dtype, saturated: bool) -> Case:
    n = sizes.n
    return Case([rng.standard_normal(n).astype(dtype), gradient(rng, n, dtype),
                 rng.exponential(1.0, n).astype(dtype), 0.1, 1e-8, 5.0, stale(rng, (n,), dtype)],
                written=(0, 1, 2), scratch=(6,))


ADAGRAD_UPDATE = Operation("adagrad.update", adagrad_update, _case, axes=("n",),
                           doc=adagrad_update.__doc__, legacy_method="adagrad_",
                           reads=("param", "grad", "mem"), writes=("param", "grad", "mem"))


class AdaGrad(Optimizer):
    name = "adagrad"
    default_eta = 0.1  # the assignment's
    sparse_safe = True

    def __init__(self, backend, size: int, eta=None, clip: float = 5.0, eps: float = 1e-8) -> None:
        super().__init__(backend, size, eta, clip)
        self.eps = float(eps)
        self.mem = backend.zeros(size)
        self._scratch = backend.zeros(size)

    def step(self, params, grads, support=None) -> None:
        be = self.backend
        if support is None:
            be.kernel(ADAGRAD_UPDATE)(params, grads, self.mem, self.eta, self.eps, self.clip, self._scratch)
            return
        # A zero gradient changes neither m nor theta: update the dense part and the touched
        # rows only. Most rows of a large vocabulary's table are untouched by one sequence: the
        # step is 1.8x faster at K=1000 (bench_layout.py); at K=103 it is no faster.
        # The gradient is clipped once, whole, rather than in each part's update.
        if self.clip:
            be.clip_(grads, -self.clip, self.clip)
        (p, g, m, s), (P, G, M, S) = self.sparse_parts(support, params, grads, self.mem,
                                                       self._scratch)
        be.kernel(ADAGRAD_UPDATE)(p, g, m, self.eta, self.eps, 0.0, s)
        rows = support.rows
        p_rows, m_rows = P[rows], M[rows]
        be.kernel(ADAGRAD_UPDATE)(p_rows, G[rows], m_rows, self.eta, self.eps, 0.0, S[: len(rows)])
        P[rows] = p_rows
        M[rows] = m_rows

    def state_dict(self) -> Dict[str, Any]:
        return {"eta": self.eta, "eps": self.eps, "mem": self.backend.to_numpy(self.mem).copy()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.eps = float(state["eps"])
        self.mem = self._load_array(state, "mem")


@hookimpl
def register_optimizers(register):
    register(AdaGrad)


@hookimpl
def register_operations(register):
    register(ADAGRAD_UPDATE)
