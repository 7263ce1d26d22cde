"""RMSProp as karpathy/char-rnn uses it (``optim.rmsprop``, decay 0.95):
``ms = decay * ms + (1 - decay) * g**2; theta -= eta * g / (sqrt(ms) + eps)``.

Not :attr:`~charrnn.optimizer.Optimizer.sparse_safe`: ``ms`` decays even where the gradient is
zero, so every entry is updated every step.
"""
from __future__ import annotations

from typing import Any, Dict

from charrnn import hookimpl
from charrnn.kernels import Case, Operation, Sizes, gradient, stale
from charrnn.optimizer import Optimizer


def rmsprop_update(be, param, grad, ms, eta: float, decay: float, eps: float, clip: float,
                   scratch) -> None:
    """RMSProp as char-rnn's ``optim.rmsprop``: ``g = clip(grad)`` (in place);
    ``ms = decay * ms + (1 - decay) * g**2``; ``param -= eta * g / (sqrt(ms) + eps)``.
    ``scratch`` arrives holding stale data: it is written before it is read."""
    xp = be.xp
    if clip:
        be.clip_(grad, -clip, clip)
    xp.multiply(grad, grad, scratch)
    scratch *= 1.0 - decay
    ms *= decay
    ms += scratch
    xp.sqrt(ms, scratch)
    scratch += eps
    xp.divide(grad, scratch, scratch)
    scratch *= eta
    param -= scratch


def _case(rng, sizes: Sizes, dtype, saturated: bool) -> Case:
    n = sizes.n
    return Case([rng.standard_normal(n).astype(dtype), gradient(rng, n, dtype),
                 rng.exponential(1.0, n).astype(dtype), 0.01, 0.95, 1e-8, 5.0,
                 stale(rng, (n,), dtype)], written=(0, 1, 2), scratch=(7,))


RMSPROP_UPDATE = Operation("rmsprop.update", rmsprop_update, _case, axes=("n",),
                           doc=rmsprop_update.__doc__, legacy_method="rmsprop_",
                           reads=("param", "grad", "ms"), writes=("param", "grad", "ms"))


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
        self.backend.kernel(RMSPROP_UPDATE)(params, grads, self.ms, self.eta, self.decay, self.eps, self.clip,
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


@hookimpl
def register_operations(register):
    register(RMSPROP_UPDATE)
