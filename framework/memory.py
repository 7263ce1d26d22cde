"""How much memory a model needs, and refusing one that cannot fit before it is allocated."""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Optional

from .errors import CharrnnError
from .model import shape_options
from .run_options import CORE_OPTIONS


def available_memory() -> Optional[int]:
    """Bytes this process can still allocate without swapping (Linux's MemAvailable), or None
    where that is not known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_estimate(cls: Any, backend: Any, vocab_size: int, options: Mapping[str, Any]) -> int:
    """Bytes a run of model ``cls`` needs, roughly: its parameters kept as float64 on the host
    while they are initialised, parameters, gradients and up to two optimizer slots in the
    run's dtype, and the activations of one update (several arrays per step and layer)."""
    given = {o.name: o.default for o in CORE_OPTIONS}
    given.update({k: v for k, v in options.items() if v is not None})
    hidden, layers = int(given["hidden"]), int(given["layers"])
    item = int(getattr(backend.dtype, "itemsize", 8))
    # A lower bound first (one hidden-by-hidden matrix a layer), so that an absurd size is
    # refused without building its parameter table.
    floor = hidden * hidden * layers * (8 + 4 * item)
    if floor > (available_memory() or floor + 1):
        return floor
    shapes = cls.param_shapes(int(vocab_size), hidden=hidden, layers=layers,
                              **shape_options(given))
    count = sum(math.prod(shape) for shape in shapes.values())
    steps = int(given["seq_length"]) * int(given["batch_size"])
    activations = steps * (int(vocab_size) * 3 + hidden * layers * 12) * item
    return count * 8 + count * item * 4 + activations


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def check_memory(cls: Any, backend: Any, vocab_size: int, options: Mapping[str, Any]) -> None:
    """Refuse a model that cannot fit before allocating it, with the estimate."""
    try:
        need = memory_estimate(cls, backend, vocab_size, options)
    except Exception:  # a plugin model without param_shapes: it is allocated and may fail then
        return
    have = available_memory()
    if have is not None and need > have:
        raise CharrnnError(
            f"this model needs about {_size(need)} (--hidden {options.get('hidden')}, --layers "
            f"{options.get('layers')}, --batch-size {options.get('batch_size')}, --seq-length "
            f"{options.get('seq_length')}) but {_size(have)} of memory is available; pass a "
            "smaller --hidden, --layers or --batch-size")
