"""The example's own tests: the update rule against a plain loop, and charrnn's conformance
checks for optimizers on the NumPy backend.

Run with the example installed (``pip install -e examples/charrnn-momentum-optimizer``), so that
charrnn's registry finds both optimizers through the entry point::

    pytest examples/charrnn-momentum-optimizer
"""
from __future__ import annotations

import numpy
import pytest
from charrnn.backends.numpy_backend import NumpyBackend
from charrnn.registry import get_registry
from charrnn.testing import KernelConformance, OptimizerConformance
from charrnn_momentum_optimizer import Momentum, Nesterov


def plain_loop(grads, start, eta, mu, clip, nesterov):
    """The update, one entry at a time, as the module docstring writes it."""
    theta, v = list(start), [0.0] * len(start)
    for grad in grads:
        for i, raw in enumerate(grad):
            g = min(max(raw, -clip), clip)
            v[i] = mu * v[i] + g
            theta[i] -= eta * (g + mu * v[i] if nesterov else v[i])
    return theta


@pytest.mark.parametrize("cls", [Momentum, Nesterov])
def test_update_rule(cls):
    rng = numpy.random.default_rng(0)
    start = rng.standard_normal(12)
    grads = [rng.standard_normal(12) * 4.0 for _ in range(5)]  # some entries beyond the clip
    be = NumpyBackend("float64")
    opt = cls(be, 12, eta=0.05, clip=5.0)
    params = start.copy()
    for g in grads:
        opt.step(params, g.copy())
    expected = plain_loop(grads, start, 0.05, 0.9, 5.0, cls.nesterov)
    numpy.testing.assert_allclose(params, expected, rtol=1e-12, atol=1e-12)


def test_nesterov_differs_from_momentum():
    be = NumpyBackend("float64")
    out = {}
    for cls in (Momentum, Nesterov):
        params, opt = numpy.zeros(3), cls(be, 3, eta=0.1)
        for _ in range(2):
            opt.step(params, numpy.ones(3))
        out[cls.name] = params
    # v = 1, then 1.9: momentum moves 0.1 + 0.19; nesterov 0.1 * 1.9 + 0.1 * 2.71.
    numpy.testing.assert_allclose(out["momentum"], -0.29)
    numpy.testing.assert_allclose(out["nesterov"], -0.461)


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), "0.9", True])
def test_refuses_a_bad_momentum(bad):
    be = NumpyBackend("float64")
    with pytest.raises(ValueError, match="momentum must be a number in"):
        Momentum(be, 3, momentum=bad)
    opt = Momentum(be, 3)
    state = {**opt.state_dict(), "momentum": bad}
    with pytest.raises(ValueError, match="momentum must be a number in"):
        opt.load_state_dict(state)


@pytest.mark.skipif(
    not {"momentum", "nesterov"} <= set(get_registry().names("optimizer")),
    reason="charrnn finds the optimizers through the entry point only once the example is "
           "installed: pip install -e examples/charrnn-momentum-optimizer")
class TestConformance(OptimizerConformance, KernelConformance):
    """charrnn's optimizer checks, for both optimizers, and its kernel checks, for both updates,
    on the NumPy backend."""

    backend = "numpy"
    optimizers = ["momentum", "nesterov"]
    operations = ["momentum.update", "nesterov.update"]
