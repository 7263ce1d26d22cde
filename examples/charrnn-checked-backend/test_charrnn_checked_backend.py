"""The example's own tests: charrnn's conformance suite on both backends, and the checks of the
``checked`` backend catching what they are for.

Run with the example importable (``pip install -e examples/charrnn-checked-backend``)::

    pytest examples/charrnn-checked-backend
"""
from __future__ import annotations

import numpy
import pytest
from charrnn.registry import get_registry
from charrnn.testing import BackendConformance
from charrnn_checked_backend import CheckedBackend, NonFiniteValue, ReferenceBackend


def operation(name):
    """A registered operation (``"rnn.forward"``, ``"adagrad.update"``, ...)."""
    return get_registry().get("operation", name)


class TestReference(BackendConformance):
    backend = ReferenceBackend


class TestChecked(BackendConformance):
    backend = CheckedBackend


def test_an_overflow_is_caught_where_it_happens():
    be = CheckedBackend("float64")
    param, grad, mem = numpy.ones(4), numpy.zeros(4), numpy.zeros(4)
    update = be.kernel(operation("adagrad.update"))
    with numpy.errstate(invalid="ignore"), \
            pytest.raises(NonFiniteValue, match=r"adagrad\.update wrote a non-finite value into "
                                                r"param \(first at 0: nan\) from finite inputs"):
        update(param, grad, mem, 0.1, 0.0, 0.0, numpy.empty(4))  # eps 0: 0 / 0


def test_a_non_finite_input_is_blamed_on_the_caller():
    be = CheckedBackend("float64")
    A = numpy.zeros((3, 2, 4))
    A[1, 0, 2] = numpy.inf
    H = numpy.zeros((4, 2, 4))
    with pytest.raises(NonFiniteValue, match=r"rnn\.forward was given a non-finite A \(first at "
                                             r"\(1, 0, 2\): inf\); it was computed outside"):
        be.kernel(operation("rnn.forward"))(numpy.eye(4), A, H)


def test_stale_outputs_are_not_checked_on_the_way_in():
    """Outputs arrive holding whatever the last call left: a NaN there is not an error."""
    be = CheckedBackend("float64")
    H = numpy.full((4, 1, 3), numpy.nan)
    H[0] = 0.5
    be.kernel(operation("rnn.forward"))(numpy.eye(3) * 0.1, numpy.zeros((3, 1, 3)), H)
    assert numpy.isfinite(H).all()


def test_results_are_the_reference_bit_for_bit():
    rng = numpy.random.default_rng(0)
    Wh, A = rng.standard_normal((5, 5)), rng.standard_normal((6, 2, 5))
    H0 = rng.standard_normal((2, 5))
    out = []
    for be in (ReferenceBackend("float64"), CheckedBackend("float64")):
        H = numpy.empty((7, 2, 5))
        H[0] = H0
        be.kernel(operation("rnn.forward"))(Wh, A.copy(), H)
        out.append(H)
    numpy.testing.assert_array_equal(out[1], out[0])
