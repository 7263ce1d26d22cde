"""Every registered operation's kernel on the backend under test, against the operation's
reference, at realistic sizes and at the edges of the activations."""
from __future__ import annotations

import zlib
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy

from ..kernels import Operation, Sizes
from .fixtures import ConformanceFixtures, pytest


def _registered_operations() -> Dict[str, Operation]:
    from ..registry import get_registry

    return {name: item.obj for name, item in get_registry().items["operation"].items()}


class KernelConformance(ConformanceFixtures):
    """For each registered operation (:mod:`charrnn.kernels`), the kernel the backend runs for
    it, whoever registered it (the backend's author, a model's, a third party), against the
    operation's reference: every output it writes, every input it must leave alone, and its
    return value where it has one.

    The cases enumerate the sizes the operation depends on: sequence lengths
    :attr:`sequence_lengths` (a recipe trains at 32 to 128), the batches of
    :attr:`~ConformanceFixtures.batches`, a hidden size of :attr:`kernel_hidden`, flat arrays of
    :attr:`flat_sizes` entries (a real model has 10^5 to 10^6), and each recurrence again with
    pre-activations in the hundreds, where a carelessly written sigmoid or tanh overflows or
    loses its gradient. Outputs arrive holding stale values (NaN among them), as they do in
    training. A backend author may change any of these class attributes.
    """

    #: Sequence lengths the recurrences are checked at.
    sequence_lengths: ClassVar[Sequence[int]] = (1, 7, 64)
    #: The hidden size of the recurrences' cases.
    kernel_hidden: ClassVar[int] = 24
    #: Lengths of the flat arrays of the optimizers' updates.
    flat_sizes: ClassVar[Sequence[int]] = (300, 100_003)
    #: Operations to check (registered names); None checks every registered operation.
    operations: ClassVar[Optional[Sequence[str]]] = None
    #: Examples Hypothesis draws per operation in :meth:`test_kernel_properties`.
    property_examples: ClassVar[int] = 25

    def kernel_cases(self, operation: Operation) -> List[Tuple[str, Sizes, bool]]:
        """(id, sizes, saturated) for each case of ``operation``."""
        cases = []
        if "n" in operation.axes:
            for n in self.flat_sizes:
                cases.append((f"n{n}", Sizes(n=n), False))
            return cases
        lengths = self.sequence_lengths if "T" in operation.axes else (1,)
        batches = self.batches if "B" in operation.axes else (1,)
        for T in lengths:
            for B in batches:
                for saturated in (False, True):
                    sizes = Sizes(T=T, B=B, m=self.kernel_hidden)
                    cases.append((f"T{T}-B{B}{'-saturated' if saturated else ''}", sizes,
                                  saturated))
        return cases

    def pytest_generate_tests(self, metafunc: Any) -> None:
        super().pytest_generate_tests(metafunc)
        if "operation_name" in metafunc.fixturenames:
            names = list(self.operations or sorted(_registered_operations()))
            metafunc.parametrize("operation_name", names)
        if "kernel_case" in metafunc.fixturenames:
            operations = _registered_operations()
            names = list(self.operations or sorted(operations))
            params, ids = [], []
            for name in names:
                operation = operations.get(name)
                if operation is None:
                    params.append((name, None))
                    ids.append(f"{name}-missing")
                    continue
                for label, sizes, saturated in self.kernel_cases(operation):
                    params.append((name, (sizes, saturated)))
                    ids.append(f"{name}-{label}")
            metafunc.parametrize("kernel_case", params, ids=ids)

    def test_kernel(self, impl, dtype, tol, kernel_case):
        """The kernel's outputs as the reference's, its inputs untouched."""
        name, drawn = kernel_case
        operations = _registered_operations()
        assert name in operations, f"no installed plugin registers the operation {name!r}"
        sizes, saturated = drawn
        seed = zlib.crc32(f"{name}/{sizes}/{saturated}/{dtype}".encode())
        self._compare(impl, dtype, tol, operations[name], sizes, saturated, seed)

    def _compare(self, impl: Any, dtype: str, tol: Dict[str, float], operation: Operation,
                 sizes: Sizes, saturated: bool, seed: int) -> None:
        """One case of ``operation`` on ``impl`` against its reference, in the same dtype."""
        import inspect

        from ..backend import Backend

        name = operation.name
        names = list(inspect.signature(operation.reference).parameters)[1:]
        declared = {spec.split("[")[0] for spec in operation.writes}
        assert declared <= set(names), (name, declared, names)
        case = operation.example(numpy.random.default_rng(seed), sizes, dtype, saturated)
        if operation.writes:  # the operation's declaration and its cases agree
            assert {names[i] for i in case.written} == declared, \
                f"{name}: its cases write {sorted(names[i] for i in case.written)}, its " \
                f"declaration says {sorted(declared)}"
        reference = Backend(dtype)  # the reference in the tested dtype: the same roundings

        def on(be: Any) -> List[Any]:
            return [self.device(be, a.copy(), a.dtype) if isinstance(a, numpy.ndarray) else a
                    for a in case.args]

        got_args, want_args = on(impl), on(reference)
        with numpy.errstate(over="ignore", invalid="ignore", divide="ignore"):
            got = impl.kernel(operation)(*got_args)
            want = operation.reference(reference, *want_args)
        shape = (f"n {sizes.n}" if "n" in operation.axes else
                 f"T {sizes.T}, B {sizes.B}, m {sizes.m}")
        where = (f"{name} on backend {impl.name!r} ({impl.kernel_source(operation)}), {shape}, "
                 f"{'saturated, ' if saturated else ''}{dtype}")
        scaled = {k: v * operation.rtol for k, v in tol.items()}
        for i, (g, w, original) in enumerate(zip(got_args, want_args, case.args)):
            if not isinstance(original, numpy.ndarray) or i in case.scratch:
                continue
            if i in case.written:
                self.assert_close(self.host(impl, g), self.host(reference, w), scaled,
                                  f"{where}: {names[i]} as the reference writes it")
            else:
                numpy.testing.assert_array_equal(
                    self.host(impl, g), original,
                    err_msg=f"{where}: {names[i]} is not the operation's to write")
        if case.returns:
            self.assert_close(self.host(impl, got), self.host(reference, want), scaled,
                              f"{where}: the value returned")

    def test_kernel_source(self, impl, dtype):
        """Every registered operation runs here, by a kernel or by its reference (which one
        each runs by is in the suite's report, ``charrnn conformance``)."""
        for name, operation in _registered_operations().items():
            if self.operations is not None and name not in self.operations:
                continue
            source = impl.kernel_source(operation)
            assert source.startswith(("reference", "kernel from", "0.5 method")), \
                (name, source)
            assert callable(impl.kernel(operation)), name

    def test_kernel_properties(self, impl, dtype, tol, operation_name):
        """Property-based (Hypothesis, when installed): for shapes and values drawn at random
        (sequence lengths, batches and hidden sizes from 1 up, ordinary or saturated inputs),
        the kernel writes what the reference writes. Shrinks a failure to the smallest case."""
        try:
            from hypothesis import HealthCheck, given, settings
            from hypothesis import strategies as st
        except ImportError:  # the suite does not need it; these cases do
            pytest.skip("Hypothesis is not installed (pip install hypothesis)")
        operation = _registered_operations()[operation_name]
        flat = "n" in operation.axes

        @settings(deadline=None, derandomize=True, max_examples=self.property_examples,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(T=st.integers(1, 20), B=st.integers(1, 4), m=st.integers(1, 12),
               n=st.integers(1, 5000), saturated=st.booleans(),
               seed=st.integers(0, 2**32 - 1))
        def check(T, B, m, n, saturated, seed):
            sizes = Sizes(T=T, B=B, m=m, n=n)
            self._compare(impl, dtype, tol, operation, sizes, saturated and not flat, seed)

        check()
