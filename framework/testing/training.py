"""Training, checkpoints and sampling on the backend under test."""
from __future__ import annotations

import os

import numpy

from ..backend import Backend
from .fixtures import ConformanceFixtures, _parametrize


class TrainingConformance(ConformanceFixtures):
    """Trainer updates, checkpoints across backends and seeded sampling, for every model.

    The trainer runs with AdaGrad and Adam only: each registered optimizer is checked on its own
    by :class:`OptimizerConformance`.
    """

    @_parametrize("optimizer", ["adagrad", "adam"])
    def test_train_steps(self, impl, reference, dtype, training_tol, model_name, optimizer):
        """Five trainer updates at batch 2 with AdaGrad and with Adam, across an epoch boundary:
        the losses, the smooth loss, the position in the text, the state and the parameters as
        on the reference, within :attr:`training_tolerances`."""
        corpus = self.corpus()
        cls = self.model_class(model_name)
        params = self.host_params(cls, corpus.vocab_size, dtype, seed=7, sigma=0.1)
        batch = 2  # 20-character stripes: the second update wraps

        def run(be):
            trainer = self.make_trainer(be, model_name, params, corpus, optimizer, batch)
            losses = self.steps(trainer, self.train_updates)
            out = {"losses": losses, "smooth loss": trainer.smooth_loss_value(),
                   "epoch": trainer.epoch, "position": trainer.stream.position,
                   **trainer.model.get_params()}
            out.update({f"state[{i}]": self.host(be, s) for i, s in enumerate(trainer.state)})
            return out

        expected, got = run(reference), run(impl)
        assert (got["epoch"], got["position"]) == (expected["epoch"], expected["position"])
        for key, value in expected.items():
            if key not in ("epoch", "position"):
                self.assert_close(got[key], value, training_tol,
                                  f"{self.train_updates} {optimizer} updates of {model_name}: {key}")

    @_parametrize("writer", ["backend", "numpy"])
    def test_checkpoint_portability(self, backend_class, impl, dtype, training_tol, tmp_path,
                                    model_name, writer):
        """A checkpoint written on one backend resumes on the other with the same losses."""
        from ..checkpoint import load_checkpoint, save_checkpoint

        corpus = self.corpus()
        cls = self.model_class(model_name)
        params = self.host_params(cls, corpus.vocab_size, dtype, seed=11, sigma=0.1)
        other_params = self.host_params(cls, corpus.vocab_size, dtype, seed=12, sigma=0.1)
        numpy_be = Backend(dtype=dtype)
        writer_be = impl if writer == "backend" else numpy_be

        first = self.make_trainer(writer_be, model_name, params, corpus, "adam", batch=2)
        self.steps(first, 3)
        path = os.path.join(str(tmp_path), "latest.npz")
        save_checkpoint(path, first.checkpoint())
        ckpt = load_checkpoint(path)
        assert ckpt.meta["backend"] == writer_be.name and ckpt.meta["dtype"] == dtype
        assert ckpt.model_name == model_name
        # Uninterrupted, the writer goes on (across the epoch boundary) ...
        expected = self.steps(first, 3)
        expected_params = first.model.get_params()

        # ... and so do a NumPy trainer and a trainer on the backend resumed from the file.
        for label, be in (("numpy", numpy_be), (backend_class.name, backend_class(dtype=dtype))):
            resumed = self.make_trainer(be, model_name, other_params, corpus, "adam", batch=2)
            resumed.restore(load_checkpoint(path))
            losses = self.steps(resumed, 3)
            what = f"{model_name} written by {writer_be.name}, resumed on {label}"
            self.assert_close(losses, expected, training_tol, f"checkpoint {what}: losses")
            for name, value in resumed.model.get_params().items():
                self.assert_close(value, expected_params[name], training_tol,
                                  f"checkpoint {what}: {name}")

    def test_sample_ids(self, impl, reference, dtype, model_name):
        """Seeded sampling, plain and with a temperature and top-k: valid ids, the same ids again
        from the same seed, the state passed in unchanged, and in float64 the reference's ids."""
        from ..sampling import sample_ids

        cls = self.model_class(model_name)
        K = self.vocab_size
        params = self.host_params(cls, K, dtype, seed=13, sigma=0.5)

        def run(be, **kwargs):
            model = self.make_model(be, cls, K, params)
            host_state = self.host_state(model, 1, dtype, seed=14)
            state = tuple(self.device(be, s) for s in host_state)
            ids = sample_ids(model, state, 2, self.sample_length,
                             rng=numpy.random.default_rng(1234), **kwargs)
            for s, h in zip(state, host_state):
                numpy.testing.assert_array_equal(self.host(be, s), h.astype(dtype),
                                                 err_msg="sample_ids modified the state")
            return ids

        for kwargs in ({}, {"temperature": 0.7, "top_k": 3}):
            ids = run(impl, **kwargs)
            assert len(ids) == self.sample_length
            assert all(isinstance(i, int) and 0 <= i < K for i in ids), f"invalid ids: {ids}"
            assert run(impl, **kwargs) == ids, "the same seed must give the same ids"
            if dtype == "float64":
                # Probabilities agree to ~1e-15; a draw would have to land that close to a
                # boundary between two ids for a correct backend to differ.
                assert ids == run(reference, **kwargs), "float64 samples differ from NumPy's"
