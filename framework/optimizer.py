"""The optimizer interface.

An optimizer updates the model's flat parameter array from its flat gradient array, through
backend operations, so that the same optimizer runs on any backend. Its state leaves and enters
as host NumPy arrays, which is what checkpoints store.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional, Tuple

import numpy

from .backend import Array, Backend
from .model import GradientSupport


class Optimizer:
    """Base class. Subclasses set :attr:`name` (what ``--optimizer`` takes) and :meth:`step`."""

    name: ClassVar[str] = "base"

    def __init__(self, backend: Backend, size: int, eta: float) -> None:
        self.backend = backend
        self.size = size
        self.eta = float(eta)

    def step(self, params: Array, grads: Array, support: Optional[GradientSupport] = None) -> None:
        """Update ``params`` in place from ``grads`` (both flat, on the backend's device).

        ``support``, when given, says where ``grads`` can be non-zero. An optimizer whose update
        is exactly zero for a zero gradient may skip the rest; any other must ignore it.
        """
        raise NotImplementedError

    @staticmethod
    def sparse_parts(support: GradientSupport, *flats: Array) -> Tuple[List[Array], List[Array]]:
        """For each flat array: its dense prefix (a view) and the matrix of its rows (a view)
        that ``support.rows`` indexes."""
        d, r = support.dense, support.row_size
        return [f[:d] for f in flats], [f[d:].reshape(-1, r) for f in flats]

    def state_dict(self) -> Dict[str, Any]:
        """Host copies of everything :meth:`load_state_dict` needs to continue exactly."""
        return {"eta": self.eta}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.eta = float(state["eta"])

    def _load_array(self, state: Dict[str, Any], key: str) -> Array:
        value = numpy.array(state[key])  # a copy: the caller's dict must not alias our state
        if value.shape != (self.size,):
            raise ValueError(f"optimizer state {key!r} has shape {value.shape}, expected ({self.size},)")
        return self.backend.asarray(value, dtype=self.backend.dtype)
