"""Every registered model on the backend under test, against the reference."""
from __future__ import annotations

import numpy

try:
    import pytest
except ImportError:  # run_conformance says how to install it
    pytest = None  # type: ignore[assignment]

from .fixtures import ConformanceFixtures, _parametrize, requires


class ModelConformance(ConformanceFixtures):
    """Each registered model's passes on the backend against the same model on the reference.

    Models call the backend's array module directly, so these cases also check that ``xp``
    shares NumPy's in-place semantics (``out=`` arguments, views into one flat array).
    """

    @_parametrize("layers", [1, 2])
    def test_loss_and_grads(self, impl, reference, dtype, tol, model_name, batch, layers):
        """The loss, every gradient and the state after the sequence, as the same model computes
        them on the reference; the same loss again on the buffers the first call allocated
        (which hold stale data); ``loss()`` agreeing; and the incoming state left unchanged."""
        cls = self.model_class(model_name)
        K, T = self.vocab_size, self.seq_length
        params = self.host_params(cls, K, dtype, seed=3, layers=layers)
        x, y = self.sequences(K, T, batch, seed=4)
        what = f"{model_name}, {layers} layer(s), B={batch}"

        def run(be):
            model = self.make_model(be, cls, K, params, layers)
            state_host = self.host_state(model, batch, dtype, seed=5)
            state = tuple(self.device(be, s) for s in state_host)
            xd, yd = be.asarray(x), be.asarray(y)
            loss, new_state = model.loss_and_grads(xd, yd, state)
            out = {"loss": be.to_float(loss), **model.get_grads()}
            out.update({f"state[{i}] after": self.host(be, s) for i, s in enumerate(new_state)})
            # Again, on the buffers the first call allocated; and the loss alone.
            loss2, _ = model.loss_and_grads(xd, yd, state)
            out["loss again"] = be.to_float(loss2)
            out["loss only"], only_state = model.loss(xd, yd, state)
            out.update({f"state[{i}] from loss": self.host(be, s) for i, s in enumerate(only_state)})
            unchanged = [numpy.array_equal(self.host(be, s), h) for s, h in zip(state, state_host)]
            return out, unchanged

        expected, _ = run(reference)
        got, unchanged = run(impl)
        assert all(unchanged), f"loss_and_grads modified the incoming state ({what})"
        for key, value in expected.items():
            self.assert_close(got[key], value, tol, f"loss_and_grads, {what}: {key}")

    @_parametrize("layers", [1, 2])
    def test_step(self, impl, reference, dtype, tol, model_name, layers):
        """Two steps of generation from a non-zero state: the logits of each and the state after,
        as on the reference."""
        cls = self.model_class(model_name)
        K = self.vocab_size
        params = self.host_params(cls, K, dtype, seed=5, layers=layers)

        def run(be):
            model = self.make_model(be, cls, K, params, layers)
            state = tuple(self.device(be, s) for s in self.host_state(model, 2, dtype, seed=6))
            state, logits = model.step(state, be.asarray(numpy.array([4, 11])))
            state, logits2 = model.step(state, be.asarray(numpy.array([0, 12])))
            return [self.host(be, logits), self.host(be, logits2)] + \
                [self.host(be, s) for s in state]

        for i, (a, b) in enumerate(zip(run(impl), run(reference))):
            name = ("logits", "logits of the second step")[i] if i < 2 else f"state[{i - 2}]"
            self.assert_close(a, b, tol, f"step ({model_name}): {name}")

    def test_step_agrees_with_loss(self, impl, dtype, tol, model_name, batch):
        """Generation and training compute the same model: stepping through a sequence gives the
        loss that :meth:`~charrnn.model.Model.loss` gives, and the same final state."""
        cls = self.model_class(model_name)
        K, T = self.vocab_size, self.seq_length
        params = self.host_params(cls, K, dtype, seed=15)
        x, y = self.sequences(K, T, batch, seed=16)
        model = self.make_model(impl, cls, K, params)
        state = tuple(self.device(impl, s) for s in self.host_state(model, batch, dtype, 17))
        expected, expected_state = model.loss(impl.asarray(x), impl.asarray(y), state)
        total, current = 0.0, state
        for t in range(T):
            current, logits = model.step(current, impl.asarray(x[t].astype(numpy.int64)))
            z = self.host(impl, logits).astype(numpy.float64)
            z -= z.max(axis=1, keepdims=True)
            logp = z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))
            total -= logp[numpy.arange(batch), y[t]].sum() / batch
        self.assert_close(total, expected, tol, f"{model_name}: loss from step() against loss()")
        for i, (a, b) in enumerate(zip(current, expected_state)):
            self.assert_close(self.host(impl, a), self.host(impl, b), tol,
                              f"{model_name}: state[{i}] after step() against after loss()")

    @requires("float64")
    @_parametrize("layers, dropout", [(1, 0.0), (2, 0.0), (1, 0.3), (2, 0.3)],
                  ids=["1", "2", "1-dropout", "2-dropout"])
    def test_gradient_check(self, backend_class, model_name, batch, layers, dropout):
        """Analytic gradients against centred differences, under the backend alone; with
        dropout, every loss is computed under the same masks (generators in the same state), so
        a wrong sign or a missing mask in the dropout's backward pass shows."""
        be = backend_class(dtype="float64")
        cls = self.model_class(model_name)
        K, T = self.vocab_size, self.seq_length
        params = self.host_params(cls, K, "float64", seed=8, layers=layers)
        x, y = self.sequences(K, T, batch, seed=9)
        model = self.make_model(be, cls, K, params, layers, dropout)
        state = tuple(self.device(be, s) for s in self.host_state(model, batch, "float64", 10))
        xd, yd = be.asarray(x), be.asarray(y)

        def loss() -> float:
            if not dropout:
                return model.loss(xd, yd, state)[0]
            value, _ = model.loss_and_grads(xd, yd, state, numpy.random.default_rng(11))
            return be.to_float(value)

        model.loss_and_grads(xd, yd, state, numpy.random.default_rng(11) if dropout else None)
        analytic = model.get_grads()
        if dropout and abs(loss() - model.loss(xd, yd, state)[0]) <= 1e-12:
            pytest.skip(f"dropout {dropout} changes nothing in the {model_name} model's loss: it "
                        "drops no units (a model without hidden layers to drop from, say)")

        rng = numpy.random.default_rng(10)
        host, step, bad = model.get_params(), self.gradcheck_step, []
        for name in model.shapes:
            g = analytic[name].reshape(-1)
            picks = set(numpy.argsort(-numpy.abs(g))[:3].tolist())  # the largest ...
            picks |= set(rng.choice(g.size, size=min(3, g.size), replace=False).tolist())  # ... and any
            for flat_index in sorted(picks):
                idx = numpy.unravel_index(flat_index, host[name].shape)
                original = host[name][idx]
                host[name][idx] = original + step
                model.set_params(host)
                plus = loss()
                host[name][idx] = original - step
                model.set_params(host)
                minus = loss()
                host[name][idx] = original
                numerical = (plus - minus) / (2 * step)
                a = float(analytic[name][idx])
                if abs(a - numerical) > self.gradcheck_atol + self.gradcheck_rtol * abs(numerical):
                    bad.append(f"d{name}{tuple(int(i) for i in idx)}: analytic {a:.10g}, "
                               f"centred difference {numerical:.10g}")
        model.set_params(host)
        assert not bad, (f"gradient check ({model_name}, {layers} layer(s), B={batch}"
                         f"{f', dropout {dropout}' if dropout else ''}) failed "
                         f"for {len(bad)} entries: " + "; ".join(bad[:8]))


# -- every registered optimizer ----------------------------------------------------------------
