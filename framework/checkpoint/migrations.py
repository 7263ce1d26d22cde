"""Reading files of format version 1 (charrnn 0.1.0): its header and arrays in today's terms."""
from __future__ import annotations

from typing import Any, Dict, List

import numpy

from .messages import Refusal
from .safe_zip import Archive, float_array
from .schema import Header


def v1_shapes(K: int, m: int) -> Dict[str, List[int]]:
    return {"W": [m, m], "U": [m, K], "V": [K, m], "b": [m], "c": [K]}


def upgrade_v1_header(meta: Dict[str, Any], header: Header) -> None:
    """A 0.1.0 header in format 2's terms: the one-layer vanilla RNN at batch 1."""
    config = meta["config"]
    K = len(meta["vocab"])
    m = header.count("config.hidden", config.get("hidden"), lo=1, hi=2**24)
    meta["state_arrays"] = 0  # the hidden state is read from ``hidden`` (the arrays' step)
    meta["model"] = {"name": "rnn", "options": {"hidden": m, "layers": 1},
                     "shapes": v1_shapes(K, m)}
    meta["batch_size"] = 1
    config.setdefault("model", "rnn")
    config.setdefault("layers", 1)
    config.setdefault("batch_size", 1)


def upgrade_v1_arrays(meta: Dict[str, Any], archive: Archive, optimizer: Dict[str, Any],
                       state: List[numpy.ndarray], read, refuse: Refusal) -> None:
    """0.1.0's hidden state and flat optimizer arrays in format 2's terms."""
    K, m = len(meta["vocab"]), meta["model"]["options"]["hidden"]
    if "hidden" not in archive.members:
        raise refuse.header("it lacks its hidden state (array 'hidden')")
    hidden = read("hidden", float_array("hidden", refuse, (m,)))
    state.append(hidden.reshape(1, 1, m))
    meta["state_arrays"] = 1
    # 0.1.0 laid its flat arrays (AdaGrad's memory) out as [V|c (K, m+1), W, b, U^T (K, m)].
    size = K * (m + 1) + m * m + m + K * m
    for key in [k for k, v in optimizer.items() if isinstance(v, numpy.ndarray)]:
        flat = optimizer[key]
        if flat.shape != (size,):
            raise refuse.array(f"optim.{key}", f"has {flat.size} entries, not one per parameter "
                                               f"({size})")
        Vc = flat[: K * (m + 1)].reshape(K, m + 1)
        rest = flat[K * (m + 1) :]
        parts = {"W": rest[: m * m].reshape(m, m), "U": rest[m * m + m :].reshape(K, m).T,
                 "V": Vc[:, :m], "b": rest[m * m : m * m + m], "c": Vc[:, m]}
        optimizer[key] = {name: numpy.array(part) for name, part in parts.items()}
