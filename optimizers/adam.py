"""Adam with bias correction, as ``torch.optim.Adam`` (betas 0.9 and 0.999, eps 1e-8).

Not :attr:`~charrnn.optimizer.Optimizer.sparse_safe`: the moments keep moving a parameter after
its gradient is zero, so every entry is updated every step.
"""
from __future__ import annotations

from typing import Any, Dict

from charrnn import hookimpl
from charrnn.kernels import Case, Operation, Sizes, gradient, stale
from charrnn.optimizer import Optimizer


def adam_update(be, param, grad, m, v, eta: float, beta1: float, beta2: float, eps: float,
                step: int, clip: float, scratch) -> None:
    """Adam with bias correction, as ``torch.optim.Adam``; ``step`` counts from 1.
    ``g = clip(grad)`` (in place); ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g**2``;
    ``param -= eta * (m / (1 - b1**step)) / (sqrt(v / (1 - b2**step)) + eps)``. ``scratch``
    arrives holding stale data: it is written before it is read."""
    xp = be.xp
    if clip:
        be.clip_(grad, -clip, clip)
    m *= beta1
    xp.multiply(grad, 1.0 - beta1, scratch)
    m += scratch
    v *= beta2
    xp.multiply(grad, grad, scratch)
    scratch *= 1.0 - beta2
    v += scratch
    correction1 = 1.0 - beta1 ** step
    correction2 = 1.0 - beta2 ** step
    xp.sqrt(v, scratch)
    scratch *= 1.0 / correction2 ** 0.5
    scratch += eps
    xp.divide(m, scratch, scratch)
    scratch *= eta / correction1
    param -= scratch


def _case(rng, sizes: Sizes, dtype, saturated: bool) -> Case:
    n = sizes.n
    return Case([rng.standard_normal(n).astype(dtype), gradient(rng, n, dtype),
                 (rng.standard_normal(n) * 0.1).astype(dtype),
                 rng.exponential(0.01, n).astype(dtype), 0.01, 0.9, 0.999, 1e-8, 7, 5.0,
                 stale(rng, (n,), dtype)], written=(0, 1, 2, 3), scratch=(10,))


ADAM_UPDATE = Operation("adam.update", adam_update, _case, axes=("n",), doc=adam_update.__doc__,
                        legacy_method="adam_",
                        reads=("param", "grad", "m", "v"), writes=("param", "grad", "m", "v"))


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
        self.backend.kernel(ADAM_UPDATE)(params, grads, self.m, self.v, self.eta, self.beta1, self.beta2,
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


@hookimpl
def register_operations(register):
    register(ADAM_UPDATE)
