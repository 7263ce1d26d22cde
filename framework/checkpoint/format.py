"""The checkpoint file: its format's name and version, the limits a reader holds it to, the
arrays' and header's checksums, and writing a file (atomically)."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy

from ..errors import CharrnnError
from ..files import atomic_write


FORMAT = "charrnn-checkpoint"
FORMAT_VERSION = 4

#: What to do about a damaged checkpoint, the end of every refusal.
ADVICE = ("the file is damaged or was edited; use the run's other checkpoint (best.npz or "
          "latest.npz) or start a new run")
#: The largest whole number a count in the header may be (what a 64-bit counter holds).
MAX_COUNT = 2**63 - 1
#: The largest header (the ``meta`` member), in bytes as stored (4 per character).
MAX_META_BYTES = 256 * 2**20
#: Nesting deeper than this is refused (what the trainer writes is 6 levels deep at most).
MAX_DEPTH = 32
#: The arrays of a file may decompress to at most this many times the file's size (charrnn stores
#: them uncompressed; compressed float data shrinks a few times at most), or this many bytes.
MAX_EXPANSION = 64
MIN_EXPANSION_BYTES = 64 * 2**20
#: The largest number of dimensions of a parameter.
MAX_NDIM = 32
FLOAT_DTYPES = (numpy.dtype("float32"), numpy.dtype("float64"))
PCG64_KEYS = {"bit_generator", "state", "has_uint32", "uinteger"}


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


def array_checksum(array: numpy.ndarray) -> str:
    """``"sha256:" + hex`` of an array's dtype, shape and bytes (in C order), as stored."""
    array = numpy.asarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{list(array.shape)}:".encode("ascii"))
    if array.size:
        digest.update(memoryview(numpy.ascontiguousarray(array).reshape(-1)).cast("B"))
    return "sha256:" + digest.hexdigest()


def header_checksum(meta: Dict[str, Any]) -> str:
    """``"sha256:" + hex`` of the header without its ``header_checksum`` field, as canonical JSON
    (keys sorted, no spaces, ASCII only): what the field holds from format version 4 on."""
    body = {k: v for k, v in meta.items() if k != "header_checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


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
    checksums = {name: array_checksum(array) for name, array in arrays.items()}
    meta = {**ckpt.meta, "format": FORMAT, "format_version": FORMAT_VERSION,
            "optimizer_state": optimizer_scalars, "state_arrays": len(ckpt.state),
            "checksums": checksums}
    meta["header_checksum"] = header_checksum(meta)
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
