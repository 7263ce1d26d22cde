"""Plain stochastic gradient descent: ``theta -= eta * g``."""
from __future__ import annotations

from charrnn import hookimpl
from charrnn.optimizer import Optimizer


class SGD(Optimizer):
    name = "sgd"

    def step(self, params, grads) -> None:
        self.backend.sgd_(params, grads, self.eta)


@hookimpl
def register_optimizers(register):
    register(SGD)
