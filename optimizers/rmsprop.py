"""RMSProp as karpathy/char-rnn uses it (``optim.rmsprop``, decay 0.95):
``ms = decay * ms + (1 - decay) * g**2; theta -= eta * g / (sqrt(ms) + eps)``.

Not :attr:`~charrnn.optimizer.Optimizer.sparse_safe`: ``ms`` decays even where the gradient is
zero, so every entry is updated every step.
"""
from __future__ import annotations

from typing import Any, Dict

from charrnn import hookimpl
from charrnn.optimizer import Optimizer


class RMSProp(Optimizer):
    name = "rmsprop"
    default_eta = 2e-3  # char-rnn's learning_rate

    def __init__(self, backend, size: int, eta=None, clip: float = 5.0, decay: float = 0.95,
                 eps: float = 1e-8) -> None:
        super().__init__(backend, size, eta, clip)
        self.decay = float(decay)
        self.eps = float(eps)
        self.ms = backend.zeros(size)
        self._scratch = backend.zeros(size)

    def step(self, params, grads, support=None) -> None:
        self.backend.rmsprop_(params, grads, self.ms, self.eta, self.decay, self.eps, self.clip,
                              self._scratch)

    def describe(self) -> str:
        return f"{super().describe()[:-1]}, decay {self.decay:g})"

    def state_dict(self) -> Dict[str, Any]:
        return {"eta": self.eta, "decay": self.decay, "eps": self.eps,
                "ms": self.backend.to_numpy(self.ms).copy()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.decay = float(state["decay"])
        self.eps = float(state["eps"])
        self.ms = self._load_array(state, "ms")


@hookimpl
def register_optimizers(register):
    register(RMSProp)
