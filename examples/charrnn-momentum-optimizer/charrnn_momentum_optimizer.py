"""An example third-party charrnn optimizer: SGD with momentum (``--optimizer momentum``) and its
Nesterov form (``--optimizer nesterov``), as ``torch.optim.SGD`` computes them (dampening 0)::

    g = clip(grad)                       elementwise to [-clip, clip], as every charrnn optimizer
    v = mu * v + g                       v, the velocity, starts at zero
    theta -= eta * v                     momentum
    theta -= eta * (g + mu * v)          nesterov: the step looks ahead along the velocity

In a long run of similar gradients the velocity grows to ``g / (1 - mu)``, ten times the gradient
at ``mu`` 0.9, so momentum wants a far smaller learning rate than plain SGD. charrnn's loss is
summed over the sequence, not averaged, which makes its gradients large: at the course's
configuration (the embedded text, hidden 100, sequences of 25) a rate of 1e-2 diverged within 400
updates, 1e-3 stalled near a smooth loss of 70, and the default, 5e-4, reached 50.6 (Nesterov's
form: 49.7) after 12,000 updates, where AdaGrad with its defaults reached 46.6.

The update is one operation per form (``momentum.update`` and ``nesterov.update``), each with its
reference written once against the backend's array module, so the optimizer runs on every
backend and any backend may register a fused kernel for it; the conformance suite checks every
backend's against the reference. Its one array of state, the velocity, is saved in checkpoints,
so a resumed run continues exactly.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

from charrnn import hookimpl
from charrnn.backend import Array, Backend
from charrnn.kernels import Case, Operation, Sizes, gradient, stale
from charrnn.optimizer import DEFAULT_CLIP, Optimizer
from charrnn.params import GradientSupport

__version__ = "0.2.0"


# -- the updates, as operations ---------------------------------------------------------------

def momentum_update(be, param, grad, velocity, eta: float, mu: float, clip: float) -> None:
    """``g = clip(grad)`` (in place; clip 0 leaves it); ``v = mu v + g``; ``param -= eta v``."""
    if clip:
        be.clip_(grad, -clip, clip)  # the model rewrites grads every update
    velocity *= mu
    velocity += grad
    param -= eta * velocity


def nesterov_update(be, param, grad, velocity, eta: float, mu: float, clip: float,
                    scratch) -> None:
    """As :func:`momentum_update`, then ``param -= eta (g + mu v)``: the step looks ahead along
    the velocity. ``scratch`` has ``param``'s shape and arrives holding stale data."""
    if clip:
        be.clip_(grad, -clip, clip)
    velocity *= mu
    velocity += grad
    be.xp.multiply(velocity, mu, out=scratch)
    scratch += grad  # g + mu v
    param -= eta * scratch


def _case(rng, sizes: Sizes, dtype, saturated: bool, nesterov: bool = False) -> Case:
    n = sizes.n
    args = [rng.standard_normal(n).astype(dtype), gradient(rng, n, dtype),
            (rng.standard_normal(n) * 0.1).astype(dtype), 0.01, 0.9, 5.0]
    if nesterov:
        return Case(args + [stale(rng, (n,), dtype)], written=(0, 1, 2), scratch=(6,))
    return Case(args, written=(0, 1, 2))


def _nesterov_case(rng, sizes: Sizes, dtype, saturated: bool) -> Case:
    return _case(rng, sizes, dtype, saturated, nesterov=True)


MOMENTUM_UPDATE = Operation("momentum.update", momentum_update, _case, axes=("n",),
                            reads=("param", "grad", "velocity"),
                            writes=("param", "grad", "velocity"))
NESTEROV_UPDATE = Operation("nesterov.update", nesterov_update, _nesterov_case, axes=("n",),
                            reads=("param", "grad", "velocity"),
                            writes=("param", "grad", "velocity"))


# -- the optimizers -----------------------------------------------------------------------------


class Momentum(Optimizer):
    """``--optimizer momentum``: SGD with heavy-ball momentum."""

    name = "momentum"
    default_eta = 5e-4  # see the module's docstring
    #: Not sparse-safe: the velocity keeps moving a parameter after its gradient is zero, so
    #: every entry is updated every step and the hint of which rows a sequence touched is ignored.
    sparse_safe = False
    #: Whether the step looks ahead along the velocity (Nesterov's form).
    nesterov = False

    def __init__(self, backend: Backend, size: int, eta: Optional[float] = None,
                 clip: float = DEFAULT_CLIP, momentum: float = 0.9) -> None:
        super().__init__(backend, size, eta, clip)
        self.momentum = _check_momentum(momentum)
        self.velocity = backend.zeros(size)
        self._scratch = backend.zeros(size)  # Nesterov's step; reused, so it holds stale data

    def step(self, params: Array, grads: Array, support: Optional[GradientSupport] = None) -> None:
        be = self.backend
        if self.nesterov:
            be.kernel(NESTEROV_UPDATE)(params, grads, self.velocity, self.eta, self.momentum,
                                       self.clip, self._scratch)
        else:
            be.kernel(MOMENTUM_UPDATE)(params, grads, self.velocity, self.eta, self.momentum,
                                       self.clip)

    def describe(self) -> str:
        return f"{super().describe()[:-1]}, momentum {self.momentum:g})"

    def state_dict(self) -> Dict[str, Any]:
        # A host copy: checkpoints store it, and it must not change as training goes on.
        return {"eta": self.eta, "momentum": self.momentum,
                "velocity": self.backend.to_numpy(self.velocity).copy()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)  # eta
        self.momentum = _check_momentum(state["momentum"])
        self.velocity = self._load_array(state, "velocity")  # shape and finiteness checked


class Nesterov(Momentum):
    """``--optimizer nesterov``: SGD with Nesterov momentum."""

    name = "nesterov"
    nesterov = True


def _check_momentum(value: Any) -> float:
    """``value`` as a float in [0, 1); a checkpoint is data from outside, so it is checked too."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"momentum must be a number in [0, 1), not {value!r}")
    return float(value)


@hookimpl
def register_optimizers(register):
    register(Momentum)
    register(Nesterov)


@hookimpl
def register_operations(register):
    register(MOMENTUM_UPDATE)
    register(NESTEROV_UPDATE)
