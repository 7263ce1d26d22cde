"""Models as plugins, batches and dropout: what the interface promises, checked on every model."""
from __future__ import annotations

import math

import numpy
import pytest
from charrnn.data import Corpus
from charrnn.errors import CharrnnError
from charrnn.registry import get_registry
from charrnn.stream import TextStream, largest_batch
from helpers import make_trainer

MODELS = ("rnn", "lstm", "gru")
K, M, T = 11, 6, 7
TEXT = "the cat sat on the mat; the rat ate the hat, and the bat sat flat.\n" * 6


def numpy_backend(dtype="float64"):
    return get_registry().get("backend", "numpy")(dtype=dtype)


def model_class(name):
    return get_registry().get("model", name)


def random_params(cls, layers, seed=0, scale=0.4):
    rng = numpy.random.default_rng(seed)
    return {name: rng.standard_normal(shape) * scale
            for name, shape in cls.param_shapes(K, hidden=M, layers=layers).items()}


def random_state(model, batch, seed=1):
    rng = numpy.random.default_rng(seed)
    return tuple(model.backend.asarray(rng.uniform(-0.6, 0.6, tuple(s.shape)))
                 for s in model.zero_state(batch))


# -- the registry and the interface ---------------------------------------------------------------

def test_built_in_models_are_registered_through_entry_points():
    registry = get_registry()
    assert set(MODELS) <= set(registry.names("model"))
    for name in MODELS:
        item = registry.items["model"][name]
        assert item.plugin.distribution == "charrnn-kit" and item.plugin.name == name
        assert item.obj.name == name


@pytest.mark.parametrize("name, expected", [
    ("rnn", ["W", "U", "V", "b", "c"]),
    ("lstm", ["Wx", "Wh", "b", "bh", "Wy", "by"]),
    ("gru", ["Wx", "Wh", "b", "bh", "Wy", "by"]),
])
def test_one_layer_parameter_names(name, expected):
    assert list(model_class(name).param_shapes(K, hidden=M, layers=1)) == expected


def test_stacked_parameters_are_numbered_by_layer():
    shapes = model_class("lstm").param_shapes(K, hidden=M, layers=2)
    assert shapes == {"Wx1": (K, 4 * M), "Wh1": (M, 4 * M), "b1": (4 * M,), "bh1": (4 * M,),
                      "Wx2": (M, 4 * M), "Wh2": (M, 4 * M), "b2": (4 * M,), "bh2": (4 * M,),
                      "Wy": (M, K), "by": (K,)}
    assert list(model_class("rnn").param_shapes(K, hidden=M, layers=2)) == \
        ["W1", "U1", "b1", "W2", "U2", "b2", "V", "c"]
    assert model_class("gru").param_shapes(K, hidden=M, layers=3)["Wx3"] == (M, 3 * M)


@pytest.mark.parametrize("name", MODELS)
def test_parameters_and_gradients_are_views_of_one_flat_array(name):
    be = numpy_backend()
    model = model_class(name)(be, K, hidden=M, layers=2, params=random_params(model_class(name), 2))
    assert model.size == sum(math.prod(s) for s in model.shapes.values())
    assert model.params.flat.shape == model.grads.flat.shape == (model.size,)
    for key, view in model.params.items():
        assert numpy.shares_memory(view, model.params.flat), key
    flat = numpy.arange(model.size, dtype=float)
    assert numpy.array_equal(model.join_flat(model.split_flat(flat)), flat)
    model.params.flat[...] = flat
    for key, value in model.split_flat(flat).items():
        numpy.testing.assert_array_equal(model.get_params()[key], value, err_msg=key)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_gated_cells_start_with_zero_biases(name):
    params = model_class(name)(numpy_backend(), K, hidden=M, layers=2).get_params()
    for b in ("b1", "bh1", "b2", "bh2", "by"):
        assert not params[b].any(), b
    assert params["Wh1"].std() == pytest.approx(model_class(name).default_sigma, rel=0.3)


@pytest.mark.parametrize("layers, dropout, message", [
    (0, 0.0, "--layers 0"), (1, 1.0, "--dropout 1.0"), (1, -0.1, "--dropout -0.1")])
def test_bad_options_are_refused_in_one_line(layers, dropout, message):
    with pytest.raises(CharrnnError, match=message) as info:
        model_class("gru")(numpy_backend(), K, hidden=M, layers=layers, dropout=dropout)
    assert "\n" not in str(info.value)


def test_describe_names_the_model_and_its_size():
    model = model_class("lstm")(numpy_backend(), K, hidden=M, layers=2, dropout=0.25)
    assert model.describe() == f"lstm (2 layers of {M}, dropout 0.25; {model.size:,} parameters)"
    assert model.options() == {"hidden": M, "layers": 2}


# -- batches --------------------------------------------------------------------------------------

@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("name", MODELS)
def test_a_batch_gradient_is_the_average_of_its_streams_gradients(name, layers):
    be, cls, B = numpy_backend(), model_class(name), 3
    params = random_params(cls, layers)
    model = cls(be, K, hidden=M, layers=layers, params=params)
    rng = numpy.random.default_rng(5)
    x = rng.integers(0, K, size=(T, B))
    y = rng.integers(0, K, size=(T, B))
    state = random_state(model, B)
    loss, new_state = model.loss_and_grads(be.asarray(x), be.asarray(y), state)
    batch_grads = model.get_grads()
    batch_state = [be.to_numpy(s).copy() for s in new_state]

    losses, grads = [], []
    for b in range(B):
        single = cls(be, K, hidden=M, layers=layers, params=params)
        l_b, s_b = single.loss_and_grads(be.asarray(x[:, b : b + 1]), be.asarray(y[:, b : b + 1]),
                                         model.select_state(state, b))
        losses.append(float(l_b))
        grads.append(single.get_grads())
        for i, s in enumerate(s_b):
            numpy.testing.assert_allclose(batch_state[i][:, b : b + 1], be.to_numpy(s),
                                          rtol=1e-12, atol=1e-14)
    assert float(loss) == pytest.approx(numpy.mean(losses), rel=1e-12)
    for key, value in batch_grads.items():
        numpy.testing.assert_allclose(value, numpy.mean([g[key] for g in grads], axis=0),
                                      rtol=1e-10, atol=1e-13, err_msg=key)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch", [1, 4])
def test_the_first_loss_is_near_seq_length_ln_K_at_every_batch_size(name, batch):
    """The loss is per sequence, averaged over the batch: smooth losses compare across sizes."""
    be = numpy_backend()
    corpus = Corpus.from_text(TEXT, "test")
    trainer = make_trainer(be, corpus, model=name, hidden=16, batch=batch, seq_length=10)
    trainer.model.set_params({k: v * 0.01 for k, v in trainer.model.get_params().items()})
    expected = 10 * math.log(corpus.vocab_size)
    assert trainer.smooth_loss_value() == pytest.approx(expected, rel=1e-12)
    assert float(trainer.train_step()) == pytest.approx(expected, rel=0.02)


def test_stripes_are_contiguous_pieces_of_the_text():
    be = numpy_backend()
    ids = numpy.arange(103) % 256
    stream = TextStream(be, ids, batch=4, seq_length=5)
    assert (stream.length, stream.characters) == (25, 100)  # the last 3 characters are not read
    x, y, wrapped = stream.next()
    assert not wrapped and x.shape == y.shape == (5, 4)
    numpy.testing.assert_array_equal(x[:, 2], ids[50:55])
    numpy.testing.assert_array_equal(y[:, 2], ids[51:56])
    x, _, _ = stream.next()
    numpy.testing.assert_array_equal(x[:, 3], ids[80:85])
    assert stream.position == 10 and stream.passes() == pytest.approx(0.4)


def test_the_streams_wrap_together_when_a_stripe_runs_out():
    stream = TextStream(numpy_backend(), numpy.arange(40) % 256, batch=2, seq_length=6)
    # stripes of 20: updates read [0, 7), [6, 13), [12, 19); the next would need 25 > 20
    for _ in range(3):
        assert not stream.next()[2]
    assert stream.will_wrap()
    numpy.testing.assert_array_equal(stream.next_inputs()[:, 1], numpy.arange(20, 26))
    x, _, wrapped = stream.next()
    assert wrapped and stream.epoch == 1 and stream.position == 6
    numpy.testing.assert_array_equal(x[:, 0], numpy.arange(6))


def test_one_stream_is_the_course_rule():
    """With B = 1 the stripe is the whole text and the wrap is 0.1.0's ``p + T + 1 > n``."""
    n, T_ = 53, 10
    stream = TextStream(numpy_backend(), numpy.arange(n) % 256, batch=1, seq_length=T_)
    starts = []
    for _ in range(12):
        x, _, _ = stream.next()
        starts.append(int(x[0, 0]))
    assert starts == [0, 10, 20, 30, 40, 0, 10, 20, 30, 40, 0, 10]
    assert stream.epoch == 2


def test_a_batch_too_large_for_the_text_names_the_largest_that_fits():
    assert largest_batch(100, 9) == 10
    with pytest.raises(CharrnnError) as info:
        TextStream(numpy_backend(), numpy.zeros(100, dtype=numpy.uint8), batch=11, seq_length=9)
    message = str(info.value)
    assert "--batch-size 11" in message and "largest batch that fits is 10" in message
    TextStream(numpy_backend(), numpy.zeros(100, dtype=numpy.uint8), batch=10, seq_length=9)


@pytest.mark.parametrize("name", MODELS)
def test_every_streams_state_resets_at_the_epoch_wrap(name):
    be = numpy_backend()
    corpus = Corpus.from_text(TEXT[:120], "test")
    trainer = make_trainer(be, corpus, model=name, hidden=8, batch=3, seq_length=9)
    while not trainer.stream.will_wrap():
        trainer.train_step()
    assert any(numpy.abs(be.to_numpy(s)).max() > 1e-3 for s in trainer.state)
    params = trainer.model.get_params()
    x, y = trainer.stream.data[:9], trainer.stream.data[1:10]
    twin = model_class(name)(be, corpus.vocab_size, hidden=8, params=params)
    expected, _ = twin.loss(x, y, twin.zero_state(3))
    assert float(trainer.train_step()) == pytest.approx(expected, rel=1e-12)
    assert trainer.epoch == 1


@pytest.mark.parametrize("name", MODELS)
def test_every_model_learns_a_repetitive_text(name):
    be = numpy_backend()
    corpus = Corpus.from_text(TEXT, "test")
    trainer = make_trainer(be, corpus, model=name, hidden=24, batch=4, seq_length=16,
                           optimizer="adam", eta=0.01)
    losses = [float(trainer.train_step()) for _ in range(150)]
    assert numpy.mean(losses[-10:]) < 0.35 * numpy.mean(losses[:5]), (losses[:5], losses[-10:])


def test_validation_reads_the_held_out_text_in_stripes():
    be = numpy_backend()
    corpus = Corpus.from_text(TEXT, "test")
    val = corpus.ids[-200:]
    trainer = make_trainer(be, corpus, model="gru", hidden=8, batch=4, seq_length=10,
                           val_ids=be.asarray(val))
    model = trainer.model
    one = trainer.validation_loss(batch=1)
    expected, _ = model.loss(be.asarray(val[:-1].reshape(-1, 1)), be.asarray(val[1:].reshape(-1, 1)),
                             model.zero_state(1))
    assert one == pytest.approx(expected / 199, rel=1e-12)  # one sequence, state carried across
    four = trainer.validation_loss()  # the training batch size: four stripes of 50
    stripes = val.reshape(4, 50)
    per_stripe = [model.loss(be.asarray(s[:-1].reshape(-1, 1)), be.asarray(s[1:].reshape(-1, 1)),
                             model.zero_state(1))[0] for s in stripes]
    assert four == pytest.approx(sum(per_stripe) / (4 * 49), rel=1e-12)


# -- dropout --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_dropout_applies_while_training_only(name):
    be, cls = numpy_backend(), model_class(name)
    params = random_params(cls, 2)
    plain = cls(be, K, hidden=M, layers=2, params=params)
    dropped = cls(be, K, hidden=M, layers=2, dropout=0.5, params=params)
    rng = numpy.random.default_rng(3)
    x, y = be.asarray(rng.integers(0, K, (T, 2))), be.asarray(rng.integers(0, K, (T, 2)))
    state = plain.zero_state(2)
    without, _ = plain.loss_and_grads(x, y, state, rng=numpy.random.default_rng(0))
    train_a, _ = dropped.loss_and_grads(x, y, state, rng=numpy.random.default_rng(0))
    train_b, _ = dropped.loss_and_grads(x, y, state, rng=numpy.random.default_rng(1))
    assert float(train_a) != pytest.approx(float(without), rel=1e-6)
    assert float(train_a) != pytest.approx(float(train_b), rel=1e-6)
    # no generator (the gradient check), evaluation and generation: no dropout
    checked, _ = dropped.loss_and_grads(x, y, state)
    assert float(checked) == pytest.approx(float(without), rel=1e-12)
    assert dropped.loss(x, y, state)[0] == pytest.approx(plain.loss(x, y, state)[0], rel=1e-12)
    ids = be.asarray(numpy.array([1, 2]))
    numpy.testing.assert_allclose(be.to_numpy(dropped.step(state, ids)[1]),
                                  be.to_numpy(plain.step(state, ids)[1]), rtol=1e-12)


@pytest.mark.parametrize("name", MODELS)
def test_the_gradient_with_dropout_is_the_masked_networks_gradient(name, monkeypatch):
    """With the masks held fixed, analytic gradients match centred differences of the loss."""
    be, cls = numpy_backend(), model_class(name)
    model = cls(be, K, hidden=M, layers=2, dropout=0.4, params=random_params(cls, 2, scale=0.5))
    mask_rng = numpy.random.default_rng(9)
    masks = [be.dropout_mask(mask_rng, (T, 2, M), 0.4) for _ in range(2)]
    calls = []

    def fixed_mask(rng, shape):
        calls.append(shape)
        return masks[(len(calls) - 1) % 2]

    monkeypatch.setattr(model, "dropout_mask", fixed_mask)
    rng = numpy.random.default_rng(4)
    x, y = be.asarray(rng.integers(0, K, (T, 2))), be.asarray(rng.integers(0, K, (T, 2)))
    state = random_state(model, 2)
    model.loss_and_grads(x, y, state, rng=numpy.random.default_rng(0))
    assert len(calls) == 2 and (masks[0] == 0).any()
    analytic = model.get_grads()
    host = model.get_params()

    def loss():
        return float(model.loss_and_grads(x, y, state, rng=numpy.random.default_rng(0))[0])

    for key in model.shapes:
        flat = host[key].reshape(-1)
        for i in numpy.random.default_rng(7).choice(flat.size, size=min(4, flat.size), replace=False):
            idx = numpy.unravel_index(i, host[key].shape)
            saved = host[key][idx]
            host[key][idx] = saved + 1e-5
            model.set_params(host)
            plus = loss()
            host[key][idx] = saved - 1e-5
            model.set_params(host)
            minus = loss()
            host[key][idx] = saved
            model.set_params(host)
            numeric = (plus - minus) / 2e-5
            assert analytic[key][idx] == pytest.approx(numeric, rel=1e-5, abs=1e-8), (key, idx)


def test_dropout_masks_follow_the_trainers_saved_stream():
    be = numpy_backend()
    corpus = Corpus.from_text(TEXT, "test")
    a = make_trainer(be, corpus, model="lstm", hidden=8, layers=2, dropout=0.3, batch=2,
                     seq_length=10, seed=5)
    b = make_trainer(be, corpus, model="lstm", hidden=8, layers=2, dropout=0.3, batch=2,
                     seq_length=10, seed=5)
    assert [float(a.train_step()) for _ in range(4)] == [float(b.train_step()) for _ in range(4)]
    b.rng.bit_generator.state = numpy.random.default_rng(99).bit_generator.state
    assert float(a.train_step()) != float(b.train_step())


# -- the gated cells' two biases ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_two_biases_act_as_their_sum_and_share_a_gradient(name):
    """The function depends on b + bh only, and both get the same gradient (so any of the
    optimizers moves them alike: together, twice as far as one bias would go)."""
    from charrnn.backends.numpy_backend import NumpyBackend

    be = NumpyBackend("float64")
    rng = numpy.random.default_rng(3)
    x, y = rng.integers(0, K, (7, 2)), rng.integers(0, K, (7, 2))
    model = model_class(name)(be, K, hidden=M, layers=2, seed=1)
    params = model.get_params()
    for layer in (1, 2):
        params[f"bh{layer}"] = rng.standard_normal(params[f"b{layer}"].shape)
    model.set_params(params)
    loss, _ = model.loss_and_grads(x, y, model.zero_state(2))
    grads = model.get_grads()
    for layer in (1, 2):
        numpy.testing.assert_array_equal(grads[f"b{layer}"], grads[f"bh{layer}"])
        assert numpy.abs(grads[f"b{layer}"]).max() > 0
    moved = dict(params)
    for layer in (1, 2):  # the same sums, split otherwise
        moved[f"b{layer}"] = params[f"b{layer}"] + params[f"bh{layer}"] - 0.5
        moved[f"bh{layer}"] = numpy.full_like(params[f"bh{layer}"], 0.5)
    model.set_params(moved)
    assert model.loss(x, y, model.zero_state(2))[0] == pytest.approx(float(loss), rel=1e-12)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_checkpoint_with_one_bias_per_layer_resumes_and_samples(run_charrnn, tmp_path, name):
    """A gated checkpoint of charrnn 0.2.0 has no bh: it loads with bh zero (the same function),
    and its optimizer state gets zeros there too."""
    from charrnn.checkpoint import load_checkpoint, save_checkpoint
    from helpers import LEAN, TEXT

    data = tmp_path / "text.txt"
    data.write_text(TEXT * 4, encoding="utf-8")
    out = tmp_path / "run"
    common = ("--data", data, "--model", name, "--layers", 2, "--hidden", 8, "--optimizer",
              "adam", "--batch-size", 2)
    assert run_charrnn("run", *common, "--iterations", 4, "--out", out, *LEAN).returncode == 0
    path = str(out / "latest.npz")
    ckpt = load_checkpoint(path)
    for layer in (1, 2):
        del ckpt.params[f"bh{layer}"]
        del ckpt.meta["model"]["shapes"][f"bh{layer}"]
        for key in ("m", "v"):
            del ckpt.optimizer[key][f"bh{layer}"]
    save_checkpoint(path, ckpt)
    proc = run_charrnn("run", "--resume", out, "--iterations", 8, "--quiet")
    assert proc.returncode == 0, proc.stderr
    resumed = load_checkpoint(path)
    assert resumed.meta["update"] == 8 and "bh1" in resumed.params
    assert run_charrnn("sample", "--checkpoint", out, "--length", 20).returncode == 0
