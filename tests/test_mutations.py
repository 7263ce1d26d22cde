"""Mutation tests of the conformance suite: realistic bugs, each injected into a copy of the NumPy
backend's kernels (or of its basics, or of a model's backward pass), must fail the suite, and
fail it where the bug is.

Each mutant is made from charrnn's own source by one textual change (the kernels' module is
read, changed and executed as a new module), registered as the kernel of a backend derived from
the NumPy one, and checked by the part of the suite it concerns, in a pytest process of its own.
The classes of bug are those a correct-looking kernel hides from small, gentle cases: a loop that
stops early, a batch computed from its first row, an activation that overflows, an output read
before it is written, gates in the wrong order, a norm over part of the array, a dropout mask
that never changes, and a sign error in a model's dropout backward pass.
"""
from __future__ import annotations

import pytest
from helpers import pytest_outcomes

#: End-to-end tier (a pytest run of the suite on eight mutants, in a process of its own).
pytestmark = pytest.mark.e2e

MUTANTS_MODULE = r'''
import inspect
import types

import numpy
from charrnn.backends import numpy_kernels
from charrnn.backends.numpy_backend import NumpyBackend
from charrnn.models import gated, lstm, stacked
from charrnn.registry import get_registry
from charrnn.testing import KernelConformance, ModelConformance, OperationsConformance

KERNELS_SOURCE = inspect.getsource(numpy_kernels)


def mutated(source, old, new, name, **namespace):
    """The module ``source`` with ``old`` replaced by ``new`` (which must occur), executed with
    ``namespace`` already defined in it."""
    assert source.count(old) >= 1, f"mutation {name}: {old!r} is not in the source"
    module = types.ModuleType(f"mutant_{name}")
    module.__dict__.update(namespace)
    exec(compile(source.replace(old, new), f"<mutant {name}>", "exec"), module.__dict__)
    return module


def kernel_mutant(name, operation, old, new):
    """A backend derived from NumPy's whose kernel for ``operation`` is the mutated one."""
    module = mutated(KERNELS_SOURCE, old, new, name)
    backend = type(f"Mutant_{name}", (NumpyBackend,), {"name": f"mutant-{name}"})
    get_registry().kernels.add(operation, backend.name, module.KERNELS[operation],
                               "mutation test")
    return backend


# 1. A recurrence that stops after 32 steps: only sequences longer than that show it.
StopsAt32 = kernel_mutant("stops-at-32", "lstm.forward", "        for t in range(T):\n"
                          "            g = G[t]",
                          "        for t in range(min(T, 32)):\n            g = G[t]")
# 2. A batch computed from its first row: only batches above 1 show it.
FirstRow = kernel_mutant("first-row", "rnn.forward", "dot(h_prev, WT, tmp)",
                         "dot(h_prev[:1], WT, tmp[:1]); tmp[1:] = tmp[:1]")
# 3. tanh as (e^2x - 1) / (e^2x + 1): inf / inf for pre-activations in the hundreds.
Overflow = kernel_mutant("overflow", "gru.forward",
                         "    numpy.multiply(x, -2.0, out=out)\n    numpy.exp(out, out=out)\n"
                         "    numpy.add(out, 1.0, out=out)\n    numpy.divide(2.0, out, out=out)\n"
                         "    numpy.subtract(out, 1.0, out=out)\n",
                         "    e = numpy.exp(2.0 * x)\n    numpy.divide(e - 1.0, e + 1.0, out=out)\n")
# 4. An output read before it is written (it arrives holding the previous update's values).
StaleRead = kernel_mutant("stale-read", "gru.forward", "numpy.subtract(n, h, out=h_new)",
                          "numpy.add(h_new * 0.0, n - h, out=h_new)")
# 5. The GRU's reset and update gates swapped.
GateSwap = kernel_mutant("gate-swap", "gru.forward",
                         "            r, u = g[:, :m], g[:, m : 2 * m]\n            multiply(r, h",
                         "            u, r = g[:, :m], g[:, m : 2 * m]\n            multiply(r, h")


# 6. A norm over the first 10^5 entries only: right for small arrays, wrong for a model's.
class PartNorm(NumpyBackend):
    name = "mutant-part-norm"

    def clip_norm_(self, x, max_norm):
        norm = numpy.sqrt(numpy.dot(x[:100_000], x[:100_000]))
        if norm > max_norm:
            x *= max_norm / (norm + 1e-6)
        return norm


# 7. A dropout mask that never changes: drawn from a fixed seed, not from the generator.
class FrozenMask(NumpyBackend):
    name = "mutant-frozen-mask"

    def dropout_mask(self, rng, shape, p):
        return super().dropout_mask(numpy.random.default_rng(0), shape, p)


# 8. A sign error in the dropout's backward pass of the stacked base, under the LSTM (the gated
# base and the LSTM rebuilt on the mutant, from their own source).
stacked_mutant = mutated(inspect.getsource(stacked), "dH *= mask", "dH *= -mask",
                         "dropout-sign")
gated_mutant = mutated(inspect.getsource(gated), "from charrnn.models.stacked import StackedRNN",
                       "", "dropout-sign-gated", StackedRNN=stacked_mutant.StackedRNN)
lstm_mutant = mutated(inspect.getsource(lstm), "from charrnn.models.gated import GatedRNN", "",
                      "dropout-sign-lstm", GatedRNN=gated_mutant.GatedRNN)
SignLSTM = lstm_mutant.LSTM
SignLSTM.name = "sign-lstm"


class TestStopsAt32(KernelConformance):
    backend = StopsAt32
    operations = ("lstm.forward",)


class TestFirstRow(KernelConformance):
    backend = FirstRow
    operations = ("rnn.forward",)


class TestOverflow(KernelConformance):
    backend = Overflow
    operations = ("gru.forward",)


class TestStaleRead(KernelConformance):
    backend = StaleRead
    operations = ("gru.forward",)


class TestGateSwap(KernelConformance):
    backend = GateSwap
    operations = ("gru.forward",)


class TestPartNorm(OperationsConformance):
    backend = PartNorm


class TestFrozenMask(OperationsConformance):
    backend = FrozenMask


class TestDropoutSign(ModelConformance):
    backend = NumpyBackend
    models = ("sign-lstm",)

    def model_class(self, name):
        return SignLSTM if name == "sign-lstm" else super().model_class(name)
'''


@pytest.fixture(scope="module")
def mutant_run(tmp_path_factory):
    """{class: {test id: outcome}} of the suite on every mutant."""
    outcomes, _, stdout = pytest_outcomes(tmp_path_factory.mktemp("mutants"), "test_mutants.py",
                                          MUTANTS_MODULE)
    assert "TestStopsAt32" in outcomes, stdout
    return {cls: {name: outcome for name, (outcome, _) in cases.items()}
            for cls, cases in outcomes.items()}


def failing(cases: dict, test: str = "test_kernel") -> set:
    """The failing cases of ``test`` (the fixed kernel cases by default; the property-based
    ones are ``test_kernel_properties``)."""
    return {name for name, outcome in cases.items() if outcome in ("failure", "error")
            and name.split("[")[0] == test}


def properties_fail(cases: dict) -> bool:
    """Whether Hypothesis's cases, drawn over shapes and values, found the bug as well."""
    return bool(failing(cases, "test_kernel_properties"))


def test_a_recurrence_that_stops_early_fails_only_at_long_sequences(mutant_run):
    cases = mutant_run["TestStopsAt32"]
    bad = failing(cases)
    assert bad and all("T64" in name for name in bad), sorted(bad)
    assert len(bad) == 8, sorted(bad)  # B 1 and 3, ordinary and saturated, both dtypes
    # Hypothesis draws sequences of up to 20 steps: it cannot see this one.
    assert not properties_fail(cases)


def test_a_batch_computed_from_its_first_row_fails_only_at_batches_above_1(mutant_run):
    bad = failing(mutant_run["TestFirstRow"])
    assert bad and all("B3" in name for name in bad), sorted(bad)
    assert properties_fail(mutant_run["TestFirstRow"])


def test_an_overflowing_activation_fails_only_when_saturated(mutant_run):
    bad = failing(mutant_run["TestOverflow"])
    assert bad and all("saturated" in name for name in bad), sorted(bad)
    assert len(bad) == 12, sorted(bad)  # every saturated case: T 1, 7, 64; B 1, 3; both dtypes
    assert properties_fail(mutant_run["TestOverflow"])


def test_an_output_read_before_it_is_written_fails(mutant_run):
    assert len(failing(mutant_run["TestStaleRead"])) == 24  # every case: stale outputs hold NaN
    assert properties_fail(mutant_run["TestStaleRead"])


def test_swapped_gates_fail(mutant_run):
    assert len(failing(mutant_run["TestGateSwap"])) >= 20
    assert properties_fail(mutant_run["TestGateSwap"])


def test_a_norm_over_part_of_the_array_fails_only_at_a_models_size(mutant_run):
    bad = failing(mutant_run["TestPartNorm"], "test_clip_norm_")
    assert bad and all("250007" in name for name in bad), sorted(bad)
    assert any("8.0" in name for name in bad), sorted(bad)


def test_a_dropout_mask_that_never_changes_fails(mutant_run):
    assert failing(mutant_run["TestFrozenMask"], "test_dropout_mask") == {
        "test_dropout_mask[float64]", "test_dropout_mask[float32]"}
    assert all(outcome == "passed" for name, outcome in mutant_run["TestFrozenMask"].items()
               if not name.startswith("test_dropout_mask"))


def test_a_sign_error_in_the_dropout_backward_pass_fails_the_gradient_check(mutant_run):
    cases = mutant_run["TestDropoutSign"]
    bad = {name for name, outcome in cases.items() if outcome in ("failure", "error")}
    # Only the gradient checks with dropout see it: without dropout the mask is never applied.
    assert bad and all(name.startswith("test_gradient_check") and "dropout" in name
                       for name in bad), sorted(bad)
    assert any(name.startswith("test_gradient_check") and "dropout" not in name
               and outcome == "passed" for name, outcome in cases.items())
