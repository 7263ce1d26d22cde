"""SGD, AdaGrad, RMSProp and Adam on numbers written out by hand, and their state round trip."""
from __future__ import annotations

import math

import numpy
import pytest
from charrnn.registry import get_registry


def optimizer(name, backend, size, eta):
    return get_registry().get("optimizer", name)(backend, size, eta)


def test_sgd_two_steps_by_hand(backend):
    theta = backend.asarray([1.0, -2.0, 0.5, 0.0])
    opt = optimizer("sgd", backend, 4, eta=0.1)
    opt.step(theta, backend.asarray([0.5, -1.0, 2.0, 0.0]))
    # theta - 0.1 * g
    numpy.testing.assert_allclose(backend.to_numpy(theta), [0.95, -1.9, 0.3, 0.0],
                                  rtol=0, atol=1e-15)
    opt.step(theta, backend.asarray([-1.0, 3.0, 0.25, 4.0]))
    numpy.testing.assert_allclose(backend.to_numpy(theta), [1.05, -2.2, 0.275, -0.4],
                                  rtol=0, atol=1e-15)
    assert opt.state_dict() == {"eta": 0.1}


def test_adagrad_two_steps_by_hand(backend):
    eta, eps = 0.1, 1e-8
    theta = backend.asarray([1.0, -2.0, 0.5, 3.0])
    opt = optimizer("adagrad", backend, 4, eta=eta)
    assert opt.eps == eps
    numpy.testing.assert_array_equal(backend.to_numpy(opt.mem), [0.0, 0.0, 0.0, 0.0])

    # step 1, g = [0.5, -1.0, 2.0, 0.0]: m = g**2 = [0.25, 1.0, 4.0, 0.0]
    opt.step(theta, backend.asarray([0.5, -1.0, 2.0, 0.0]))
    m1 = [0.25, 1.0, 4.0, 0.0]
    numpy.testing.assert_array_equal(backend.to_numpy(opt.mem), m1)
    expected1 = [
        1.0 - 0.1 * 0.5 / math.sqrt(0.25 + 1e-8),   # ~ 0.90000002
        -2.0 - 0.1 * -1.0 / math.sqrt(1.0 + 1e-8),  # ~ -1.9
        0.5 - 0.1 * 2.0 / math.sqrt(4.0 + 1e-8),    # ~ 0.4
        3.0 - 0.1 * 0.0 / math.sqrt(0.0 + 1e-8),    # a zero gradient leaves theta alone
    ]
    numpy.testing.assert_allclose(backend.to_numpy(theta), expected1, rtol=1e-15, atol=1e-15)
    numpy.testing.assert_allclose(expected1, [0.9, -1.9, 0.4, 3.0], atol=1e-7)  # sanity

    # step 2, g = [1.5, -1.0, -2.0, 0.5]: m = [0.25 + 2.25, 1 + 1, 4 + 4, 0 + 0.25]
    opt.step(theta, backend.asarray([1.5, -1.0, -2.0, 0.5]))
    m2 = [2.5, 2.0, 8.0, 0.25]
    numpy.testing.assert_array_equal(backend.to_numpy(opt.mem), m2)
    expected2 = [
        expected1[0] - 0.1 * 1.5 / math.sqrt(2.5 + 1e-8),
        expected1[1] - 0.1 * -1.0 / math.sqrt(2.0 + 1e-8),
        expected1[2] - 0.1 * -2.0 / math.sqrt(8.0 + 1e-8),
        expected1[3] - 0.1 * 0.5 / math.sqrt(0.25 + 1e-8),
    ]
    numpy.testing.assert_allclose(backend.to_numpy(theta), expected2, rtol=1e-15, atol=1e-15)
    numpy.testing.assert_allclose(
        expected2, [0.80513167, -1.82928932, 0.47071068, 2.9], atol=1e-7)  # sanity


def _run(opt, theta, grads):
    for g in grads:
        opt.step(theta, g)


def test_rmsprop_two_steps_by_hand(backend):
    """char-rnn's RMSProp: ms = 0.95 ms + 0.05 g**2; theta -= eta g / (sqrt(ms) + eps)."""
    theta = backend.asarray([1.0, -2.0, 0.5])
    opt = optimizer("rmsprop", backend, 3, eta=0.01)
    assert (opt.decay, opt.eps, opt.clip) == (0.95, 1e-8, 5.0)
    g1, g2 = [2.0, -1.0, 0.0], [1.0, 3.0, -4.0]
    opt.step(theta, backend.asarray(g1))
    ms1 = [0.05 * 4.0, 0.05 * 1.0, 0.0]
    numpy.testing.assert_allclose(backend.to_numpy(opt.ms), ms1, rtol=1e-15)
    expected1 = [1.0 - 0.01 * 2.0 / (math.sqrt(0.2) + 1e-8),
                 -2.0 - 0.01 * -1.0 / (math.sqrt(0.05) + 1e-8), 0.5]
    numpy.testing.assert_allclose(backend.to_numpy(theta), expected1, rtol=1e-14)
    opt.step(theta, backend.asarray(g2))
    ms2 = [0.95 * ms1[0] + 0.05 * 1.0, 0.95 * ms1[1] + 0.05 * 9.0, 0.05 * 16.0]
    numpy.testing.assert_allclose(backend.to_numpy(opt.ms), ms2, rtol=1e-14)
    expected2 = [e - 0.01 * g / (math.sqrt(m) + 1e-8) for e, g, m in zip(expected1, g2, ms2)]
    numpy.testing.assert_allclose(backend.to_numpy(theta), expected2, rtol=1e-14)


def test_adam_two_steps_by_hand(backend):
    """torch.optim.Adam's update: bias-corrected moments, eps outside the square root."""
    theta = backend.asarray([1.0, -2.0])
    opt = optimizer("adam", backend, 2, eta=0.1)
    assert (opt.beta1, opt.beta2, opt.eps) == (0.9, 0.999, 1e-8)
    m = v = numpy.zeros(2)
    expected = numpy.array([1.0, -2.0])
    for t, g in enumerate(([0.5, -3.0], [-1.0, 2.0]), start=1):
        g = numpy.array(g)
        opt.step(theta, backend.asarray(g))
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        m_hat, v_hat = m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)
        expected = expected - 0.1 * m_hat / (numpy.sqrt(v_hat) + 1e-8)
        numpy.testing.assert_allclose(backend.to_numpy(theta), expected, rtol=1e-13)
    assert opt.t == 2
    # the first step of Adam moves every parameter by about eta, whatever its gradient's scale
    fresh = optimizer("adam", backend, 2, eta=0.1)
    start = backend.asarray([0.0, 0.0])
    fresh.step(start, backend.asarray([1e-3, -40.0]))
    numpy.testing.assert_allclose(backend.to_numpy(start), [-0.1, 0.1], rtol=1e-4)


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam"])
def test_every_gradient_entry_is_clipped_first(backend, name):
    """A gradient of 40 updates as one of 5 (the clip), a gradient of -2 as itself."""
    clipped = optimizer(name, backend, 2, eta=0.1)
    theta = backend.asarray([0.0, 0.0])
    clipped.step(theta, backend.asarray([40.0, -2.0]))
    reference = optimizer(name, backend, 2, eta=0.1)
    expected = backend.asarray([0.0, 0.0])
    reference.step(expected, backend.asarray([5.0, -2.0]))
    numpy.testing.assert_array_equal(backend.to_numpy(theta), backend.to_numpy(expected))
    unclipped = get_registry().get("optimizer", name)(backend, 2, eta=0.1, clip=0.0)
    free = backend.asarray([0.0, 0.0])
    unclipped.step(free, backend.asarray([40.0, -2.0]))
    if name == "sgd":  # the others normalise the step, so only SGD moves by the size itself
        assert backend.to_numpy(free)[0] == pytest.approx(-4.0)
    assert backend.to_numpy(free)[1] == pytest.approx(backend.to_numpy(expected)[1])


@pytest.mark.parametrize("name", ["adagrad", "sgd", "rmsprop", "adam"])
def test_state_dict_round_trip_continues_identically(backend, name):
    rng = numpy.random.default_rng(0)
    size = 7
    grads = [backend.asarray(rng.standard_normal(size)) for _ in range(6)]
    theta = backend.asarray(rng.standard_normal(size))

    original = optimizer(name, backend, size, eta=0.05)
    _run(original, theta, grads[:3])
    state = original.state_dict()
    theta_saved = backend.to_numpy(theta).copy()

    restored = optimizer(name, backend, size, eta=123.0)  # eta must come from the state
    restored.load_state_dict(state)
    assert restored.eta == 0.05
    theta_restored = backend.asarray(theta_saved.copy())

    _run(original, theta, grads[3:])
    _run(restored, theta_restored, grads[3:])
    numpy.testing.assert_array_equal(backend.to_numpy(theta_restored), backend.to_numpy(theta))
    assert not numpy.array_equal(backend.to_numpy(theta), theta_saved)  # the steps did move it
    for key, value in original.state_dict().items():
        if isinstance(value, numpy.ndarray):
            numpy.testing.assert_array_equal(restored.state_dict()[key], value, err_msg=key)
        else:
            assert restored.state_dict()[key] == value, key


def test_adagrad_state_dict_is_a_snapshot(backend):
    opt = optimizer("adagrad", backend, 3, eta=0.1)
    theta = backend.asarray([1.0, 2.0, 3.0])
    opt.step(theta, backend.asarray([1.0, 1.0, 1.0]))
    state = opt.state_dict()
    assert isinstance(state["mem"], numpy.ndarray)
    assert state["eps"] == 1e-8 and state["eta"] == 0.1
    opt.step(theta, backend.asarray([1.0, 1.0, 1.0]))
    numpy.testing.assert_array_equal(state["mem"], [1.0, 1.0, 1.0])  # not mutated by later steps


def test_adagrad_load_state_dict_does_not_alias_the_state(backend):
    opt = optimizer("adagrad", backend, 3, eta=0.1)
    opt.step(backend.asarray([1.0, 2.0, 3.0]), backend.asarray([1.0, 1.0, 1.0]))
    state = opt.state_dict()
    fresh = optimizer("adagrad", backend, 3, eta=0.1)
    fresh.load_state_dict(state)
    fresh.step(backend.asarray([0.0, 0.0, 0.0]), backend.asarray([1.0, 1.0, 1.0]))
    numpy.testing.assert_array_equal(state["mem"], [1.0, 1.0, 1.0])


def test_adagrad_load_state_dict_rejects_wrong_size(backend):
    opt = optimizer("adagrad", backend, 3, eta=0.1)
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict({"eta": 0.1, "eps": 1e-8, "mem": numpy.zeros(4)})


def test_adagrad_in_float32(backend):
    be32 = get_registry().get("backend", "numpy")(dtype="float32")
    opt = optimizer("adagrad", be32, 2, eta=0.5)
    theta = be32.asarray([1.0, 1.0], dtype=be32.dtype)
    opt.step(theta, be32.asarray([2.0, -2.0], dtype=be32.dtype))
    assert theta.dtype == numpy.float32 and opt.mem.dtype == numpy.float32
    numpy.testing.assert_allclose(backend.to_numpy(theta), [0.5, 1.5], rtol=1e-6)
