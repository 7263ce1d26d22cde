"""Checkpoints that are safe to load from anyone: ``.npz`` arrays plus a JSON header, no pickle.

One file holds everything a run needs to continue exactly: parameters, optimizer state, hidden
state, update count, text position, smooth loss, callbacks' state (random streams included), the
vocabulary, the configuration, and the backend, dtype and charrnn version that wrote it. Arrays
are stored as host NumPy arrays, so a checkpoint written by one backend loads in any other.

Files are written to a temporary name and renamed into place, so an interrupted save never
leaves a truncated ``latest.npz`` or ``best.npz`` behind.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy

from .errors import CharrnnError
from .files import atomic_write
from .model import PARAM_NAMES

FORMAT = "charrnn-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    meta: Dict[str, Any]
    params: Dict[str, numpy.ndarray]
    optimizer: Dict[str, Any]
    hidden: numpy.ndarray
    path: Optional[str] = None
    extra: Dict[str, numpy.ndarray] = field(default_factory=dict)

    @property
    def vocab(self) -> list:
        return list(self.meta["vocab"])

    @property
    def config(self) -> Dict[str, Any]:
        return dict(self.meta["config"])


def save_checkpoint(path: str, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically."""
    arrays: Dict[str, numpy.ndarray] = {f"param.{k}": numpy.asarray(v) for k, v in ckpt.params.items()}
    optimizer_scalars: Dict[str, Any] = {}
    for key, value in ckpt.optimizer.items():
        if isinstance(value, numpy.ndarray):
            arrays[f"optim.{key}"] = value
        else:
            optimizer_scalars[key] = value
    arrays["hidden"] = numpy.asarray(ckpt.hidden)
    meta = {**ckpt.meta, "format": FORMAT, "format_version": FORMAT_VERSION,
            "optimizer_state": optimizer_scalars}
    arrays["meta"] = numpy.array(json.dumps(meta))
    atomic_write(path, lambda fh: numpy.savez(fh, **arrays))


def resolve_checkpoint_path(path: str, prefer: str = "best") -> str:
    """A checkpoint file, or a run directory (its ``best.npz`` or ``latest.npz``)."""
    if os.path.isdir(path):
        order = ["best.npz", "latest.npz"] if prefer == "best" else ["latest.npz"]
        for name in order:
            candidate = os.path.join(path, name)
            if os.path.exists(candidate):
                return candidate
        raise CharrnnError(f"run directory {path} holds no checkpoint ({' or '.join(order)}); "
                           "pass a run directory that has trained for at least one checkpoint")
    return path


def load_checkpoint(path: str) -> Checkpoint:
    """Read a checkpoint, refusing anything that is not one, with a one-line reason."""
    if not os.path.exists(path):
        raise CharrnnError(f"checkpoint {path} does not exist; pass a .npz file written by "
                           "charrnn run (RUN_DIR/latest.npz or RUN_DIR/best.npz)")
    unreadable = CharrnnError(f"{path} is not a readable charrnn checkpoint (truncated, corrupted "
                              "or another program's file); pass a latest.npz or best.npz "
                              "written by charrnn run")
    try:
        with numpy.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError):
        raise unreadable from None
    if "meta" not in arrays:
        raise unreadable
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except ValueError:
        raise unreadable from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise unreadable
    missing = [k for k in ("update", "epoch", "position", "smooth_loss", "vocab", "config")
               if k not in meta]
    if missing:
        raise CharrnnError(f"{path} lacks {', '.join(missing)} in its header; it is not a complete "
                           "charrnn checkpoint (damaged or edited)")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CharrnnError(f"{path} was written by a newer charrnn ({meta.get('charrnn_version')});"
                           " upgrade charrnn-kit to read it")
    try:
        params = {name: arrays.pop(f"param.{name}") for name in PARAM_NAMES}
        hidden = arrays.pop("hidden")
    except KeyError:
        raise unreadable from None
    optimizer: Dict[str, Any] = dict(meta.get("optimizer_state", {}))
    for key in [k for k in arrays if k.startswith("optim.")]:
        optimizer[key[len("optim."):]] = arrays.pop(key)
    _check_shapes(path, meta, params, hidden)
    return Checkpoint(meta=meta, params=params, optimizer=optimizer, hidden=hidden, path=path,
                      extra=arrays)


def _check_shapes(path: str, meta: Dict[str, Any], params: Dict[str, numpy.ndarray],
                  hidden: numpy.ndarray) -> None:
    from .model import param_shapes

    try:
        K, m = len(meta["vocab"]), int(meta["config"]["hidden"])
    except (KeyError, TypeError, ValueError):
        raise CharrnnError(f"{path} lacks its vocabulary or configuration; it is not a complete "
                           "charrnn checkpoint") from None
    expected = param_shapes(K, m)
    for name, shape in expected.items():
        if tuple(params[name].shape) != shape:
            raise CharrnnError(f"{path}: parameter {name} has shape {tuple(params[name].shape)} "
                               f"but its vocabulary and hidden size need {shape}; the file is "
                               "damaged or was edited")
    if tuple(hidden.shape) != (m,):
        raise CharrnnError(f"{path}: hidden state has shape {tuple(hidden.shape)}, expected ({m},)")
