"""Plain stochastic gradient descent: ``theta -= eta * clip(g)``."""
from __future__ import annotations

from charrnn import hookimpl
from charrnn.kernels import Case, Operation, Sizes, gradient
from charrnn.optimizer import Optimizer


def sgd_update(be, param, grad, eta: float, clip: float = 0.0) -> None:
    """``grad = clip(grad)`` elementwise to ``[-clip, clip]`` in place (clip 0 leaves it), then
    ``param -= eta * grad``."""
    if clip:
        be.clip_(grad, -clip, clip)
    param -= eta * grad


def _case(rng, sizes: Sizes, dtype, saturated: bool) -> Case:
    return Case([rng.standard_normal(sizes.n).astype(dtype), gradient(rng, sizes.n, dtype),
                 0.1, 5.0], written=(0, 1))


SGD_UPDATE = Operation("sgd.update", sgd_update, _case, axes=("n",), doc=sgd_update.__doc__,
                       legacy_method="sgd_",
                       reads=("param", "grad"), writes=("param", "grad"))


class SGD(Optimizer):
    name = "sgd"
    default_eta = 0.1
    sparse_safe = True

    def step(self, params, grads, support=None) -> None:
        be = self.backend
        if support is None:
            be.kernel(SGD_UPDATE)(params, grads, self.eta, self.clip)
            return
        # A zero gradient moves nothing: update the dense part and the touched rows only.
        # The gradient is clipped once, whole, rather than in each part's update.
        if self.clip:
            be.clip_(grads, -self.clip, self.clip)
        (p, g), (P, G) = self.sparse_parts(support, params, grads)
        be.kernel(SGD_UPDATE)(p, g, self.eta, 0.0)
        rows = support.rows
        touched = P[rows]
        be.kernel(SGD_UPDATE)(touched, G[rows], self.eta, 0.0)
        P[rows] = touched


@hookimpl
def register_optimizers(register):
    register(SGD)


@hookimpl
def register_operations(register):
    register(SGD_UPDATE)
