"""The divergence check: at every update where the loss reads for free (host memory), and on a
device backend without waiting for the device at every update, yet stopping at the same update
and never saving the diverged state."""
from __future__ import annotations

import numpy

from charrnn.backends.numpy_backend import NumpyBackend
from charrnn.data import Corpus
from charrnn.trainer import DIVERGENCE_CHECK_EVERY
import pytest
from helpers import TEXT, make_trainer

#: Overflow in a diverging run is the point of these tests, not a warning.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


class DeviceLike(NumpyBackend):
    """NumPy declared as a device backend, counting the reads of a scalar (each of which, on a
    GPU, would wait for the device)."""

    name = "devicelike"
    host_memory = False
    reads = 0

    def to_float(self, scalar):
        DeviceLike.reads += 1
        return super().to_float(scalar)


def corpus():
    return Corpus.from_text(TEXT * 4, "test")


def test_a_device_backend_is_read_once_per_hundred_updates():
    DeviceLike.reads = 0
    trainer = make_trainer(DeviceLike(), corpus(), iterations=250)
    assert trainer.divergence_every == DIVERGENCE_CHECK_EVERY == 100
    trainer.fit()
    assert trainer.update == 250 and trainer.diverged_at is None
    assert DeviceLike.reads == 3  # at updates 100 and 200, and once at the end
    assert make_trainer(NumpyBackend(), corpus(), iterations=1).divergence_every == 1


def test_a_device_backend_stops_at_the_update_that_diverged_and_saves_nothing_of_it():
    """The same run on the host (checked at every update) and on the device-like backend
    (checked every hundred): both name the same update; the latter trains on to its next check,
    and then refuses to save."""
    options = dict(optimizer="sgd", eta=1e4, clip=0.0, iterations=1000, sigma=1.0)
    host = make_trainer(NumpyBackend(), corpus(), **options)
    host.fit()
    assert host.diverged_at is not None and host.diverged_at < 90, host.diverged_at
    assert host.update == host.diverged_at and not host.can_save

    device = make_trainer(DeviceLike(), corpus(), **options)
    device.fit()
    assert device.diverged_at == host.diverged_at
    assert device.update == DIVERGENCE_CHECK_EVERY  # found at the first check after it
    assert device.stop_reason.kind.name == "DIVERGED"
    assert f"at update {host.diverged_at}" in device.stop_reason
    assert not device.can_save


def test_a_checkpoint_reads_the_device_record_before_saving():
    """Between checks, asking whether the state may be saved reads the device: a divergence
    since the last check is found then, not saved."""
    options = dict(optimizer="sgd", eta=1e4, clip=0.0, iterations=1000, sigma=1.0)
    host = make_trainer(NumpyBackend(), corpus(), **options)
    host.fit()
    device = make_trainer(DeviceLike(), corpus(), iterations=1000, optimizer="sgd", eta=1e4,
                          clip=0.0, sigma=1.0)
    for _ in range(host.diverged_at + 1):
        device._diverged(device.train_step())
    assert device.diverged_at is None  # not read yet
    assert not device.can_save
    assert device.diverged_at == host.diverged_at
    assert not numpy.isfinite(device.backend.to_float(device.loss))
