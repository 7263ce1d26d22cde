"""Every registered optimizer's update on the backend under test."""
from __future__ import annotations

import numpy

from .fixtures import ConformanceFixtures


class OptimizerConformance(ConformanceFixtures):
    """Each registered optimizer's updates and state on the backend, against the reference.

    An optimizer plugin author can run these alone, on the NumPy backend, for their own
    optimizers: ``backend = "numpy"`` and ``optimizers = ["mine"]``.
    """

    def test_optimizer_steps(self, impl, reference, dtype, tol, rng, optimizer_name):
        """Three updates with a clip, of a flat array laid out as a model's (a dense part, then the
        rows of a table of which two are touched), with and without a
        :class:`~charrnn.params.GradientSupport` naming the touched rows: both as the reference's
        update without it. An optimizer that is not ``sparse_safe`` must ignore the hint."""
        cls = self.optimizer_class(optimizer_name)
        rows, width, dense = 6, 4, 10
        size = dense + rows * width
        start = self.round_to(dtype, rng.standard_normal(size))
        grads = [self.round_to(dtype, rng.standard_normal(size) * 3.0) for _ in range(3)]
        touched = numpy.array([1, 4])
        for g in grads:  # the untouched rows of the last block are zero, as a model leaves them
            g[dense:].reshape(rows, width)[[0, 2, 3, 5]] = 0.0

        def run(be, sparse):
            from ..params import GradientSupport

            opt = cls(be, size, eta=self.eta, clip=self.clip)
            param = self.device(be, start)
            for g in grads:
                support = GradientSupport(dense, width, be.asarray(touched)) if sparse else None
                opt.step(param, self.device(be, g), support)
            return self.host(be, param)

        expected = run(reference, False)
        self.assert_close(run(impl, False), expected, tol, f"{optimizer_name}: three updates")
        self.assert_close(run(impl, True), expected, tol,
                          f"{optimizer_name}: three updates given the rows a sequence touched")

    def test_optimizer_state_round_trip(self, impl, reference, dtype, tol, rng, optimizer_name):
        """``state_dict()`` after two updates holds host NumPy copies that do not change as
        training goes on; a fresh optimizer, built with another ``eta``, that loads it continues
        exactly as the original does, and as the same optimizer on the reference."""
        cls = self.optimizer_class(optimizer_name)
        size = 30
        start = self.round_to(dtype, rng.standard_normal(size))
        grads = [self.round_to(dtype, rng.standard_normal(size)) for _ in range(4)]

        opt = cls(impl, size, eta=self.eta, clip=self.clip)
        param = self.device(impl, start)
        for g in grads[:2]:
            opt.step(param, self.device(impl, g))
        state = opt.state_dict()
        snapshot = {}
        for key, value in state.items():
            if hasattr(value, "shape"):
                assert isinstance(value, numpy.ndarray), (
                    f"{optimizer_name} state_dict()[{key!r}] is a {type(value).__name__}, not a "
                    "host numpy.ndarray")
                snapshot[key] = value.copy()
        midway = self.host(impl, param).copy()

        fresh = cls(impl, size, eta=self.eta * 7, clip=self.clip)  # load_state_dict restores eta
        fresh.load_state_dict(state)
        param2 = self.device(impl, midway)
        ref_opt = cls(reference, size, eta=self.eta * 7, clip=self.clip)
        ref_opt.load_state_dict(state)
        param_ref = self.device(reference, midway)
        for g in grads[2:]:
            opt.step(param, self.device(impl, g))
            fresh.step(param2, self.device(impl, g))
            ref_opt.step(param_ref, self.device(reference, g))
        for key, value in snapshot.items():
            numpy.testing.assert_array_equal(state[key], value, err_msg=(
                f"{optimizer_name} state_dict()[{key!r}] changed as training went on: it aliases "
                "the optimizer's live state instead of being a copy"))
        self.assert_close(self.host(impl, param2), self.host(impl, param), tol,
                          f"{optimizer_name}: a fresh optimizer loaded from state_dict continues "
                          "identically")
        self.assert_close(self.host(impl, param), self.host(reference, param_ref), tol,
                          f"{optimizer_name}: continuing from the same state as NumPy")


# -- training, checkpoints and sampling ----------------------------------------------------------
