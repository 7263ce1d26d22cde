"""Plain stochastic gradient descent: ``theta -= eta * clip(g)``."""
from __future__ import annotations

from charrnn import hookimpl
from charrnn.optimizer import Optimizer


class SGD(Optimizer):
    name = "sgd"
    default_eta = 0.1
    sparse_safe = True

    def step(self, params, grads, support=None) -> None:
        be = self.backend
        if support is None:
            be.sgd_(params, grads, self.eta, self.clip)
            return
        # A zero gradient moves nothing: update the dense part and the touched rows only.
        # The gradient is clipped once, whole, rather than in each part's update.
        if self.clip:
            be.clip_(grads, -self.clip, self.clip)
        (p, g), (P, G) = self.sparse_parts(support, params, grads)
        be.sgd_(p, g, self.eta, 0.0)
        rows = support.rows
        touched = P[rows]
        be.sgd_(touched, G[rows], self.eta, 0.0)
        P[rows] = touched


@hookimpl
def register_optimizers(register):
    register(SGD)
