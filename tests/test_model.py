"""The vanilla RNN model and the trainer: gradients, initial loss, determinism, epoch wrap, dtypes,
learning. (The gated models and batches are in test_models.py.)"""
from __future__ import annotations

import math

import numpy
import pytest
from charrnn.models.rnn import RNN
from charrnn.optimizer import DEFAULT_CLIP as CLIP
from charrnn.registry import get_registry
from helpers import make_trainer as assemble

K, M, T = 10, 5, 8
SHAPES = RNN.param_shapes(K, hidden=M, layers=1)
PARAM_NAMES = list(SHAPES)


def numpy_backend(dtype="float64"):
    return get_registry().get("backend", "numpy")(dtype=dtype)


def small_problem(seed=1):
    rng = numpy.random.default_rng(seed)
    x = rng.integers(0, K, size=T)
    y = rng.integers(0, K, size=T)
    h0 = rng.uniform(-0.8, 0.8, size=M)
    return x, y, h0


def one_stream(backend, x, y, h0):
    """A single sequence as the model reads it: ids (T, 1), state ((1, 1, M),)."""
    return (backend.asarray(numpy.asarray(x).reshape(-1, 1)),
            backend.asarray(numpy.asarray(y).reshape(-1, 1)),
            (backend.asarray(numpy.asarray(h0, dtype=float).reshape(1, 1, -1)),))


def reference_forward(params, x, y, h0):
    """The assignment's equations written out step by step, independent of the model's code."""
    h = numpy.array(h0, dtype=numpy.float64)
    loss = 0.0
    for t in range(len(x)):
        onehot = numpy.zeros(params["U"].shape[1])
        onehot[x[t]] = 1.0
        h = numpy.tanh(params["W"] @ h + params["U"] @ onehot + params["b"])
        o = params["V"] @ h + params["c"]
        p = numpy.exp(o - o.max())
        p /= p.sum()
        loss -= math.log(p[y[t]])
    return loss, h


@pytest.fixture
def model(backend):
    # sigma 0.3 and non-zero biases make every gradient component substantial.
    rng = numpy.random.default_rng(7)
    params = {name: rng.standard_normal(shape) * 0.3 for name, shape in SHAPES.items()}
    return RNN(backend, K, hidden=M, params=params)


@pytest.mark.parametrize("h0_kind", ["zero", "nonzero"])
def test_analytic_gradients_match_centred_differences(model, backend, h0_kind):
    x, y, h0 = small_problem()
    if h0_kind == "zero":
        h0 = numpy.zeros(M)
    xs, ys, h0s = one_stream(backend, x, y, h0)
    loss, _ = model.loss_and_grads(xs, ys, h0s)
    analytic = model.get_grads()
    assert float(loss) == pytest.approx(model.loss(xs, ys, h0s)[0], rel=1e-12)

    step = 1e-5
    for name in PARAM_NAMES:
        view = model.params[name]
        numeric = numpy.zeros(view.shape)
        for idx in numpy.ndindex(*view.shape):
            saved = float(view[idx])
            view[idx] = saved + step
            plus = model.loss(xs, ys, h0s)[0]
            view[idx] = saved - step
            minus = model.loss(xs, ys, h0s)[0]
            view[idx] = saved
            numeric[idx] = (plus - minus) / (2 * step)
        a = analytic[name]
        assert a.shape == SHAPES[name]
        assert numpy.linalg.norm(a) > 1e-3, f"gradient of {name} is trivially small"
        rel = numpy.linalg.norm(a - numeric) / max(numpy.linalg.norm(a), numpy.linalg.norm(numeric))
        assert rel < 1e-6, f"relative error of d{name} is {rel:.2e}"
        # elementwise too; the floor keeps exact zeros (dU of unseen characters) and tiny
        # components, where the difference quotient's rounding noise (~1e-10) dominates, fair
        elem = numpy.abs(a - numeric) / numpy.maximum(numpy.abs(a) + numpy.abs(numeric), 1e-2)
        assert elem.max() < 1e-6, f"worst element of d{name} is off by {elem.max():.2e}"


def test_dU_is_zero_for_characters_not_in_the_input(model, backend):
    x = numpy.array([0, 1, 1, 2, 0, 2, 1, 0])
    y = numpy.arange(T)
    model.loss_and_grads(*one_stream(backend, x, y, numpy.zeros(M)))
    dU = model.get_grads()["U"]
    assert numpy.all(dU[:, 3:] == 0.0)
    assert numpy.all(numpy.abs(dU[:, :3]).sum(axis=0) > 0)


def test_loss_and_last_hidden_state_match_reference_equations(model, backend):
    x, y, h0 = small_problem(seed=3)
    loss, (h_last,) = model.loss_and_grads(*one_stream(backend, x, y, h0))
    ref_loss, ref_h = reference_forward(model.get_params(), x, y, h0)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-12)
    numpy.testing.assert_allclose(backend.to_numpy(h_last).reshape(-1), ref_h, rtol=1e-12,
                                  atol=1e-14)
    # generation takes the same step as training
    state = one_stream(backend, x, y, h0)[2]
    for t in range(T):
        state, logits = model.step(state, backend.asarray(numpy.array([x[t]])))
    numpy.testing.assert_allclose(backend.to_numpy(state[0]).reshape(-1), ref_h, rtol=1e-12,
                                  atol=1e-14)


def test_returned_hidden_state_is_a_copy(model, backend):
    x, y, h0 = small_problem()
    _, (h,) = model.loss_and_grads(*one_stream(backend, x, y, h0))
    before = backend.to_numpy(h).copy()
    x2, y2, _ = small_problem(seed=9)
    model.loss_and_grads(*one_stream(backend, x2, y2, numpy.zeros(M)))
    numpy.testing.assert_array_equal(backend.to_numpy(h), before)


def make_trainer(text, seq_length, hidden=M, dtype="float64", seed=0, sigma=0.01, eta=0.1,
                 iterations=10**6):
    from charrnn.data import Corpus

    be = numpy_backend(dtype)
    corpus = Corpus.from_text(text, "test")
    trainer = assemble(be, corpus, hidden=hidden, seq_length=seq_length, eta=eta,
                       iterations=iterations, seed=seed)
    # the weights at the given scale, drawn as the model draws them
    trainer.model.sigma = sigma
    trainer.model.set_params(trainer.model.init_params(seed))
    return trainer


def test_initial_smooth_loss_is_seq_length_ln_K():
    text = "the quick brown fox jumps over the lazy dog. " * 4
    K_text = len(set(text))
    trainer = make_trainer(text, seq_length=12)
    assert trainer.model.K == K_text
    assert trainer.smooth_loss_value() == pytest.approx(12 * math.log(K_text), rel=1e-12)
    # with small weights the first loss is close to uniform guessing, the same number
    first = float(trainer.train_step())
    assert first == pytest.approx(12 * math.log(K_text), rel=1e-2)


def _losses(trainer, n):
    return [float(trainer.train_step()) for _ in range(n)]


def test_same_seed_gives_identical_losses():
    text = "abracadabra, said the wizard; abracadabra said the cat.\n" * 3
    runs = [make_trainer(text, seq_length=10, hidden=8, seed=seed) for seed in (0, 0, 1)]
    a, b, c = (_losses(t, 40) for t in runs)  # 40 updates: more than one epoch
    assert runs[0].epoch >= 1
    assert a == b
    for name, value in runs[0].model.get_params().items():
        numpy.testing.assert_array_equal(value, runs[1].model.get_params()[name])
    assert c != a


def test_hidden_state_resets_to_zero_at_the_epoch_wrap(backend):
    seq = 5
    text = "abcdefghij" * 2 + "k"  # 21 characters: updates at 0, 5, 10, 15; then a wrap
    trainer = make_trainer(text, seq_length=seq, sigma=0.5, seed=3)
    ids = backend.to_numpy(trainer.stream.data).reshape(-1)
    per_epoch = (len(text) - 1) // seq
    assert per_epoch == 4
    for k in range(per_epoch):
        assert trainer.epoch == 0
        trainer.train_step()
        assert trainer.stream.position == (k + 1) * seq
    assert trainer.epoch == 0 and trainer.update == per_epoch
    carried = backend.to_numpy(trainer.state[0]).copy()
    assert numpy.abs(carried).max() > 1e-3  # the carried state is not zero before the wrap
    assert trainer.stream.will_wrap()
    numpy.testing.assert_array_equal(backend.to_numpy(trainer.stream.next_inputs()).reshape(-1),
                                     ids[:seq])

    # what the next update must compute: the start of the text from a zero state
    m = trainer.model.hidden
    twin = RNN(numpy_backend(), trainer.model.K, hidden=m, params=trainer.model.get_params())
    x, y, zero = one_stream(twin.backend, ids[:seq], ids[1 : seq + 1], numpy.zeros(m))
    expected = twin.loss(x, y, zero)[0]
    with_carried = twin.loss(x, y, (twin.backend.asarray(carried),))[0]
    assert abs(expected - with_carried) > 1e-6  # the check below can tell the two apart

    loss = float(trainer.train_step())
    assert loss == pytest.approx(expected, rel=1e-12)
    assert trainer.epoch == 1
    assert trainer.stream.position == seq
    assert trainer.update == per_epoch + 1
    # the state carried out of the wrapped update is the one from a zero start
    _, (h_after,) = twin.loss_and_grads(x, y, zero)
    numpy.testing.assert_allclose(backend.to_numpy(trainer.state[0]),
                                  twin.backend.to_numpy(h_after), rtol=1e-12, atol=1e-15)


def test_gradients_are_clipped_before_the_update(backend):
    trainer = make_trainer("abcabcabd" * 5, seq_length=8, sigma=3.0, seed=2)
    before = trainer.model.get_params()
    # the unclipped gradient of the first update, from a twin of the model
    twin = RNN(numpy_backend(), trainer.model.K, hidden=M, params=before)
    x, y = trainer.stream.next_inputs(), trainer.stream.data[1:9]
    twin.loss_and_grads(x, y, twin.zero_state(1))
    unclipped = twin.get_grads()
    assert max(numpy.abs(g).max() for g in unclipped.values()) > 2 * CLIP  # large weights
    trainer.optimizer = get_registry().get("optimizer", "sgd")(trainer.backend,
                                                             trainer.model.size, eta=1.0)
    trainer.train_step()
    after = trainer.model.get_params()
    for name in PARAM_NAMES:
        numpy.testing.assert_allclose(before[name] - after[name],
                                      numpy.clip(unclipped[name], -CLIP, CLIP),
                                      rtol=1e-12, atol=1e-12)


def test_float32_runs_and_its_grads_are_float32():
    be = numpy_backend("float32")
    trainer = make_trainer("hello world, hello charrnn. " * 4, seq_length=10, dtype="float32")
    model = trainer.model
    assert model.backend.dtype == numpy.float32
    assert trainer.model.params.flat.dtype == numpy.float32
    losses = _losses(trainer, 20)
    assert all(math.isfinite(v) for v in losses)
    assert model.grads.flat.dtype == numpy.float32
    for name, g in model.get_grads().items():
        assert g.dtype == numpy.float32, name
        assert model.get_params()[name].dtype == numpy.float32, name
    assert trainer.state[0].dtype == numpy.float32
    assert trainer.optimizer.mem.dtype == numpy.float32
    assert numpy.abs(model.get_grads()["W"]).max() > 0
    # the same numbers as float64, to float32 precision
    x = be.asarray((numpy.arange(6) % model.K).reshape(6, 1))
    y = be.asarray(((numpy.arange(6) + 1) % model.K).reshape(6, 1))
    model64 = RNN(numpy_backend("float64"), model.K, hidden=model.hidden,
                  params=model.get_params())
    l32, _ = model.loss_and_grads(x, y, model.zero_state(1))
    l64, _ = model64.loss_and_grads(x, y, model64.zero_state(1))
    assert numpy.asarray(l32).dtype == numpy.float32
    assert float(l32) == pytest.approx(float(l64), rel=1e-5)
    for name in PARAM_NAMES:
        numpy.testing.assert_allclose(model.get_grads()[name], model64.get_grads()[name],
                                      rtol=1e-3, atol=1e-5)


def test_loss_decreases_on_repetitive_text():
    text = "the cat sat on the mat. " * 20
    trainer = make_trainer(text, seq_length=12, hidden=16, seed=0, eta=0.1)
    start = trainer.smooth_loss_value()
    losses = _losses(trainer, 400)
    first, last = numpy.mean(losses[:10]), numpy.mean(losses[-20:])
    assert last < 0.25 * first, (first, last)
    assert trainer.smooth_loss_value() < start
    assert trainer.epoch >= 1


def test_numpy_segment_sum_matches_the_reference_operation(backend):
    """The NumPy backend's own segment sum (dU's scatter) agrees with the base class's."""
    from charrnn.backend import Backend

    reference = Backend(dtype="float64")
    rng = numpy.random.default_rng(5)
    ids = numpy.array([3, 0, 3, 3, 1, 0, 6])
    values = rng.standard_normal((ids.size, 4))
    expected = numpy.zeros((8, 4))
    for i, row in zip(ids, values):
        expected[i] += row
    for be in (reference, backend):
        out = numpy.full((8, 4), 7.0)  # stale contents must not survive
        be.segment_sum(be.asarray(ids), be.asarray(values), out)
        numpy.testing.assert_allclose(out, expected, rtol=1e-14, atol=1e-15)
        # into a transposed view, as the model writes dU
        target = numpy.full((4, 8), 7.0)
        be.segment_sum(be.asarray(ids), be.asarray(values), target.T)
        numpy.testing.assert_allclose(target.T, expected, rtol=1e-14, atol=1e-15)
