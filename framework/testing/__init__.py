"""The backend conformance suite: check that an array backend computes what the reference does.

A backend author (built-in or third-party) gets the whole suite by subclassing
:class:`BackendConformance` in any test module; no conftest, no fixtures to copy::

    # tests/test_my_backend.py
    from charrnn.testing import BackendConformance
    from my_package import MyBackend

    class TestMyBackend(BackendConformance):
        backend = MyBackend          # or the name it is registered under: backend = "mybackend"

Then ``pytest tests/test_my_backend.py``. The same suite runs from the launcher, against any
registered backend, with ``charrnn conformance --backend NAME`` (see :func:`run_conformance`).

The suite is split by area into mixins, as fsspec's abstract tests are, so a backend still under
construction can take the parts it is ready for (each needs :class:`ConformanceFixtures`, which
they all derive from)::

    class TestMyOps(OperationsConformance):     # the backend's operations, one by one
        backend = MyBackend

* :class:`OperationsConformance`: every array basic of :class:`charrnn.backend.Backend`: moving
  data, ``softmax`` (large logits included), ``segment_sum``, ``clip_``, ``clip_norm_`` and
  ``dropout_mask``;
* :class:`KernelConformance`: every registered operation (:mod:`charrnn.kernels`: the models'
  recurrences, the optimizers' updates, a third party's) by the kernel the backend runs for it,
  against the operation's reference, at sequence lengths up to 64, batches above 1, flat arrays
  of 10^5 entries and saturated pre-activations;
* :class:`ModelConformance`: for every registered model (:attr:`ConformanceFixtures.models`), at
  B=1 and B>1 and with one and two layers: the loss, the state after the sequence and every
  gradient of ``loss_and_grads``, the loss alone, two steps of generation, that generation
  agrees with the loss, and a gradient check (centred differences under the backend alone,
  float64);
* :class:`OptimizerConformance`: every registered optimizer's updates, with a clip, with and
  without the hint of which rows a sequence touched (an optimizer that cannot use it must ignore
  it), and its state round trip;
* :class:`TrainingConformance`: several trainer updates across an epoch boundary for every model,
  checkpoints written on one backend and resumed on the other, and seeded sampling.

Every check but the gradient checks and the check that generation agrees with the loss (which run
on the backend alone) compares against the reference computing on the host from the same
host-initialised inputs, in float64 and in float32. The reference is the base class
:class:`charrnn.backend.Backend` itself, with its ``xp`` left at NumPy: its operations are written
once, plainly. It is not the NumPy backend plugin (``charrnn.backends.numpy_backend``), which has
optimisations of its own and is checked against the reference like any other backend; the core
imports no backend.

Tolerances are per dtype, in the class attributes :attr:`ConformanceFixtures.tolerances` (one
operation or one pass) and :attr:`ConformanceFixtures.training_tolerances` (after several optimizer
updates); override them in the subclass to loosen or tighten them::

    class TestMyBackend(BackendConformance):
        backend = MyBackend
        tolerances = {**BackendConformance.tolerances, "float32": {"rtol": 1e-3, "atol": 1e-4}}

Capabilities, in the manner of SQLAlchemy's requirements: a backend declares what it does not
support in its ``capabilities`` class attribute (for example ``{"float64": False}``), and the
cases that need it are skipped with a reason naming the capability instead of failing. The names
the suite knows are listed in :data:`CAPABILITIES`; a test added in a subclass can use
:func:`requires` the same way. A backend that cannot run here (its ``check_available`` raises
:class:`charrnn.errors.BackendUnavailable`, say CuPy without a GPU) has every case skipped, with its
message as the reason.

Assertion rewriting for this module is switched on by charrnn's pytest plugin
(:mod:`charrnn.pytest_plugin`, registered through the ``pytest11`` entry point).
"""
from __future__ import annotations

from ..conformance import run_conformance
from .fixtures import CAPABILITIES, ConformanceFixtures, requires, resolve_backend
from .kernels import KernelConformance
from .models import ModelConformance
from .operations import OperationsConformance
from .optimizers import OptimizerConformance
from .training import TrainingConformance

__all__ = ["BackendConformance", "ConformanceFixtures", "OperationsConformance",
           "KernelConformance", "ModelConformance", "OptimizerConformance", "TrainingConformance", "CAPABILITIES",
           "requires", "resolve_backend", "run_conformance"]


class BackendConformance(OperationsConformance, KernelConformance, ModelConformance,
                         OptimizerConformance, TrainingConformance):
    """The whole suite: subclass it and set :attr:`backend`."""
