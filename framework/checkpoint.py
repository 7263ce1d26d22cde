"""Checkpoints that are safe to load from anyone: ``.npz`` arrays plus a JSON header, no pickle.

One file holds everything a run needs to continue exactly: parameters, optimizer state, the
streams' recurrent state, update count, stream position, smooth loss, the dropout stream,
callbacks' state (random streams included), the vocabulary, the configuration, the model's name,
options and parameter shapes, and the backend, dtype and charrnn version that wrote it. Arrays
are stored as host NumPy arrays, so a checkpoint written by one backend loads in any other.

Format versions: 1 was written by charrnn 0.1.0 (the vanilla RNN at batch 1, its hidden state in
``hidden``, AdaGrad's memory as one flat array in that version's layout); 2 names the model,
stores the state as ``state.0``, ``state.1``, ... and the optimizer's per-parameter arrays by
parameter name (``optim.mem:W``), so a checkpoint does not depend on how a version lays the
parameters out in memory. Both load.

Files are written to a temporary name and renamed into place, so an interrupted save never
leaves a truncated ``latest.npz`` or ``best.npz`` behind.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy

from .errors import CharrnnError
from .files import atomic_write

FORMAT = "charrnn-checkpoint"
FORMAT_VERSION = 2


@dataclass
class Checkpoint:
    meta: Dict[str, Any]
    params: Dict[str, numpy.ndarray]
    optimizer: Dict[str, Any]
    #: The recurrent state, one host array per entry of the model's state tuple.
    state: List[numpy.ndarray]
    path: Optional[str] = None
    extra: Dict[str, numpy.ndarray] = field(default_factory=dict)

    @property
    def vocab(self) -> list:
        return list(self.meta["vocab"])

    @property
    def config(self) -> Dict[str, Any]:
        return dict(self.meta["config"])

    @property
    def model_name(self) -> str:
        return str(self.meta["model"]["name"])

    @property
    def model_options(self) -> Dict[str, Any]:
        return dict(self.meta["model"].get("options") or {})


def save_checkpoint(path: str, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically."""
    arrays: Dict[str, numpy.ndarray] = {f"param.{k}": numpy.asarray(v) for k, v in ckpt.params.items()}
    optimizer_scalars: Dict[str, Any] = {}
    for key, value in ckpt.optimizer.items():
        if isinstance(value, dict):  # a flat array split by parameter name
            for name, part in value.items():
                arrays[f"optim.{key}:{name}"] = numpy.asarray(part)
        elif isinstance(value, numpy.ndarray):
            arrays[f"optim.{key}"] = value
        else:
            optimizer_scalars[key] = value
    for i, array in enumerate(ckpt.state):
        arrays[f"state.{i}"] = numpy.asarray(array)
    meta = {**ckpt.meta, "format": FORMAT, "format_version": FORMAT_VERSION,
            "optimizer_state": optimizer_scalars, "state_arrays": len(ckpt.state)}
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
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, AttributeError):
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
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CharrnnError(f"{path} was written by a newer charrnn ({meta.get('charrnn_version')});"
                           " upgrade charrnn-kit to read it")
    if not isinstance(meta.get("vocab"), list) or not isinstance(meta.get("config"), dict):
        raise CharrnnError(f"{path} lacks its vocabulary or configuration; it is not a complete "
                           "charrnn checkpoint")
    if version < 2:
        _upgrade_v1(path, meta, arrays)
    model = meta.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("shapes"), dict) \
            or not isinstance(model.get("name"), str):
        raise CharrnnError(f"{path} does not say which model it holds; it is damaged or was "
                           "edited")
    try:
        params = {name: arrays.pop(f"param.{name}") for name in model["shapes"]}
        state = [arrays.pop(f"state.{i}") for i in range(int(meta.get("state_arrays", 0)))]
    except (KeyError, TypeError, ValueError):
        raise unreadable from None
    for name, array in params.items():
        shape = tuple(model["shapes"][name])
        if array.shape != shape:
            raise CharrnnError(f"{path}: parameter {name} has shape {array.shape} but the header "
                               f"says {shape}; the file is damaged or was edited")
    optimizer: Dict[str, Any] = dict(meta.get("optimizer_state") or {})
    for key in [k for k in arrays if k.startswith("optim.")]:
        name, _, part = key[len("optim."):].partition(":")
        if part:
            optimizer.setdefault(name, {})[part] = arrays.pop(key)
        else:
            optimizer[name] = arrays.pop(key)
    return Checkpoint(meta=meta, params=params, optimizer=optimizer, state=state, path=path,
                      extra=arrays)


def _upgrade_v1(path: str, meta: Dict[str, Any], arrays: Dict[str, numpy.ndarray]) -> None:
    """A 0.1.0 checkpoint in format 2's terms: the one-layer vanilla RNN at batch 1."""
    try:
        K, m = len(meta["vocab"]), int(meta["config"]["hidden"])
    except (KeyError, TypeError, ValueError):
        raise CharrnnError(f"{path} lacks its vocabulary or hidden size; it is not a complete "
                           "charrnn checkpoint") from None
    if "hidden" not in arrays:
        raise CharrnnError(f"{path} lacks its hidden state; it is damaged or was edited")
    hidden = arrays.pop("hidden")
    if hidden.shape != (m,):
        raise CharrnnError(f"{path}: hidden state has shape {hidden.shape}, expected ({m},)")
    arrays["state.0"] = hidden.reshape(1, 1, m)
    # 0.1.0 laid its flat arrays (AdaGrad's memory) out as [V|c (K, m+1), W, b, U^T (K, m)].
    for key in [k for k in arrays if k.startswith("optim.")]:
        flat = arrays.pop(key)
        if flat.shape != (K * (m + 1) + m * m + m + K * m,):
            raise CharrnnError(f"{path}: optimizer state {key[6:]!r} has {flat.size} entries, not "
                               "one per parameter; the file is damaged or was edited")
        Vc = flat[: K * (m + 1)].reshape(K, m + 1)
        rest = flat[K * (m + 1) :]
        parts = {"W": rest[: m * m].reshape(m, m), "U": rest[m * m + m :].reshape(K, m).T,
                 "V": Vc[:, :m], "b": rest[m * m : m * m + m], "c": Vc[:, m]}
        for name, part in parts.items():
            arrays[f"{key}:{name}"] = numpy.array(part)
    meta["state_arrays"] = 1
    meta["model"] = {"name": "rnn", "options": {"hidden": m, "layers": 1},
                     "shapes": {"W": [m, m], "U": [m, K], "V": [K, m], "b": [m], "c": [K]}}
    meta.setdefault("batch_size", 1)
    config = meta["config"]
    config.setdefault("model", "rnn")
    config.setdefault("layers", 1)
    config.setdefault("batch_size", 1)
