"""Adam with bias correction, as ``torch.optim.Adam`` (betas 0.9 and 0.999, eps 1e-8).

Not :attr:`~charrnn.optimizer.Optimizer.sparse_safe`: the moments keep moving a parameter after
its gradient is zero, so every entry is updated every step.
"""
from __future__ import annotations

from typing import Any, Dict

from charrnn import hookimpl
from charrnn.optimizer import Optimizer


class Adam(Optimizer):
    name = "adam"
    default_eta = 2e-3

    def __init__(self, backend, size: int, eta=None, clip: float = 5.0, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8) -> None:
        super().__init__(backend, size, eta, clip)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.m = backend.zeros(size)
        self.v = backend.zeros(size)
        #: Updates taken; the bias correction of update t uses t (from 1).
        self.t = 0
        self._scratch = backend.zeros(size)

    def step(self, params, grads, support=None) -> None:
        self.t += 1
        self.backend.adam_(params, grads, self.m, self.v, self.eta, self.beta1, self.beta2,
                           self.eps, self.t, self.clip, self._scratch)

    def describe(self) -> str:
        return f"{super().describe()[:-1]}, betas {self.beta1:g} {self.beta2:g})"

    def state_dict(self) -> Dict[str, Any]:
        be = self.backend
        return {"eta": self.eta, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "t": self.t, "m": be.to_numpy(self.m).copy(), "v": be.to_numpy(self.v).copy()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.beta1, self.beta2 = float(state["beta1"]), float(state["beta2"])
        self.eps = float(state["eps"])
        t = state["t"]
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError(f"optimizer state 't' is {t!r}, not a count of updates")
        self.t = t
        self.m = self._load_array(state, "m")
        self.v = self._load_array(state, "v")


@hookimpl
def register_optimizers(register):
    register(Adam)
