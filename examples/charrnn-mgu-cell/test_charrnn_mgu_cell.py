"""The example's own tests: its kernel is the one the NumPy backend runs for its operations, and
charrnn's conformance suite passes for the kernel (against the operations' references) and for
the model (gradients against centred differences, with and without dropout).

Run with the example installed (``pip install -e examples/charrnn-mgu-cell``), so that charrnn's
registry finds the model, the operations and the kernel through the entry point::

    pytest examples/charrnn-mgu-cell
"""
from __future__ import annotations

from charrnn.backends.numpy_backend import NumpyBackend
from charrnn.testing import KernelConformance, ModelConformance
from charrnn_mgu_cell import MGU_BACKWARD, MGU_FORWARD, mgu_backward_numpy, mgu_forward_numpy


def test_the_numpy_backend_runs_this_kernel():
    be = NumpyBackend()
    assert be.kernel(MGU_FORWARD).func is mgu_forward_numpy
    assert be.kernel(MGU_BACKWARD).func is mgu_backward_numpy
    assert be.kernel_source(MGU_FORWARD) == "kernel from mgu (charrnn-mgu-cell)"


class TestMGUOnNumpy(KernelConformance, ModelConformance):
    backend = "numpy"
    models = ("mgu",)
    operations = ("mgu.forward", "mgu.backward")
