"""Plain stochastic gradient descent: ``theta -= eta * g``."""
from __future__ import annotations

from charrnn import hookimpl
from charrnn.optimizer import Optimizer


class SGD(Optimizer):
    name = "sgd"

    def step(self, params, grads, support=None) -> None:
        if support is None:
            self.backend.sgd_(params, grads, self.eta)
            return
        # A zero gradient moves nothing: update the dense part and the touched rows only.
        (p, g), (P, G) = self.sparse_parts(support, params, grads)
        self.backend.sgd_(p, g, self.eta)
        rows = support.rows
        touched = P[rows]
        self.backend.sgd_(touched, G[rows], self.eta)
        P[rows] = touched


@hookimpl
def register_optimizers(register):
    register(SGD)
