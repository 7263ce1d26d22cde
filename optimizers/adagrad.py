"""AdaGrad as in the course assignment: ``m += g**2; theta -= eta * g / sqrt(m + eps)``."""
from __future__ import annotations

from typing import Any, Dict

from charrnn import hookimpl
from charrnn.optimizer import Optimizer


class AdaGrad(Optimizer):
    name = "adagrad"

    def __init__(self, backend, size: int, eta: float, eps: float = 1e-8) -> None:
        super().__init__(backend, size, eta)
        self.eps = float(eps)
        self.mem = backend.zeros(size)
        self._scratch = backend.zeros(size)

    def step(self, params, grads) -> None:
        self.backend.adagrad_(params, grads, self.mem, self.eta, self.eps, self._scratch)

    def state_dict(self) -> Dict[str, Any]:
        return {"eta": self.eta, "eps": self.eps, "mem": self.backend.to_numpy(self.mem).copy()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.eps = float(state["eps"])
        self.mem = self._load_array(state, "mem")


@hookimpl
def register_optimizers(register):
    register(AdaGrad)
