"""Checkpoints that are safe to load from anyone: ``.npz`` arrays plus a JSON header, no pickle.

One file holds everything a run needs to continue exactly: parameters, optimizer state, the
streams' recurrent state, update count, stream position, smooth loss, the dropout stream,
callbacks' state (random streams included), the vocabulary, the configuration, the model's name,
options and parameter shapes, and the backend, dtype and charrnn version that wrote it. Arrays
are stored as host NumPy arrays, so a checkpoint written by one backend loads in any other.

Format versions: 1 was written by charrnn 0.1.0 (the vanilla RNN at batch 1, its hidden state in
``hidden``, AdaGrad's memory as one flat array in that version's layout); 2, by 0.2.0 and 0.3.0,
names the model, stores the state as ``state.0``, ``state.1``, ... and the optimizer's
per-parameter arrays by parameter name (``optim.mem:W``), so a checkpoint does not depend on how
a version lays the parameters out in memory; 3, by the versions after 0.3.0, adds ``checksums``
to the header: for every array, ``"sha256:" + hex`` of its dtype, shape and bytes (see
:func:`array_checksum`), verified on load; 4, from 0.6.0 on, adds ``header_checksum`` (the
header's own, see :func:`header_checksum`), so no field of the header can be edited, a version
number or a checksum included, without the file being refused, and ``run_id``, the run the file
belongs to. All four load; files of versions 1 and 2 have no checksums to verify.

Loading trusts nothing in the file. The ``meta`` member (the JSON header) is read first and every
field the trainer writes is checked (type, range, finiteness); then every array's zip entry is
checked against the header's shapes and the file's size before a byte of it is read, its ``.npy``
header is parsed without ``allow_pickle`` (an object array is refused, never unpickled), and its
dtype (float32 or float64), shape, values (finite) and checksum are checked. Whatever is wrong,
:func:`load_checkpoint` raises :class:`~charrnn.errors.CharrnnError` with one line that names the
file, the field or array, and what to do. What needs the model class (do the parameter names and
shapes fit the model being built?) is :func:`validate_against_model`.

Files are written to a temporary name and renamed into place, so an interrupted save never
leaves a truncated ``latest.npz`` or ``best.npz`` behind.

The package is split by job: :mod:`.format` (the format, its checksums, writing),
:mod:`.schema` (the header's fields), :mod:`.safe_zip` (reading the archive without trusting it),
:mod:`.migrations` (older format versions), :mod:`.loading` and :mod:`.validation` (against the
model being built).
"""
from __future__ import annotations

from .format import (ADVICE, FORMAT, FORMAT_VERSION, Checkpoint, array_checksum, header_checksum,
                     resolve_checkpoint_path, save_checkpoint)
from .loading import load_checkpoint
from .validation import validate_against_model

__all__ = ["ADVICE", "FORMAT", "FORMAT_VERSION", "Checkpoint", "array_checksum",
           "header_checksum", "load_checkpoint", "resolve_checkpoint_path", "save_checkpoint",
           "validate_against_model"]
