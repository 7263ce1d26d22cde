"""AdaGrad as in the course assignment: ``m += g**2; theta -= eta * g / sqrt(m + eps)``."""
from __future__ import annotations

from typing import Any, Dict

from charrnn import hookimpl
from charrnn.optimizer import Optimizer


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
            be.adagrad_(params, grads, self.mem, self.eta, self.eps, self.clip, self._scratch)
            return
        # A zero gradient changes neither m nor theta: update the dense part and the touched
        # rows only. Most rows of a large vocabulary's table are untouched by one sequence: the
        # step is 1.8x faster at K=1000 (bench_layout.py); at K=103 it is no faster.
        # The gradient is clipped once, whole, rather than in each part's update.
        if self.clip:
            be.clip_(grads, -self.clip, self.clip)
        (p, g, m, s), (P, G, M, S) = self.sparse_parts(support, params, grads, self.mem,
                                                       self._scratch)
        be.adagrad_(p, g, m, self.eta, self.eps, 0.0, s)
        rows = support.rows
        p_rows, m_rows = P[rows], M[rows]
        be.adagrad_(p_rows, G[rows], m_rows, self.eta, self.eps, 0.0, S[: len(rows)])
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
