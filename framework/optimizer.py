"""The optimizer interface.

An optimizer updates the model's flat parameter array from its flat gradient array, through one
backend operation that clips the gradient elementwise and applies the update (so a backend can
fuse both into one kernel), and the same optimizer then runs on any backend. Its state leaves and
enters as host NumPy arrays, which is what checkpoints store.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional, Tuple

import numpy

from .backend import Array, Backend
from .params import GradientSupport

#: The elementwise gradient clip of the course assignment (``--clip``).
DEFAULT_CLIP = 5.0


class Optimizer:
    """Base class. Subclasses set :attr:`name` (what ``--optimizer`` takes), :attr:`default_eta`
    (the learning rate when ``--eta`` is not given) and :meth:`step`.

    ``clip`` bounds every gradient entry to ``[-clip, clip]`` before the update; 0 turns
    clipping off.
    """

    name: ClassVar[str] = "base"
    default_eta: ClassVar[float] = 0.1
    #: Whether the update is exactly zero where the gradient is zero, so that rows a sequence
    #: did not touch may be skipped (see :class:`charrnn.params.GradientSupport`).
    sparse_safe: ClassVar[bool] = False

    def __init__(self, backend: Backend, size: int, eta: Optional[float] = None,
                 clip: float = DEFAULT_CLIP) -> None:
        self.backend = backend
        self.size = size
        self.eta = float(self.default_eta if eta is None else eta)
        self.clip = float(clip or 0.0)

    def step(self, params: Array, grads: Array, support: Optional[GradientSupport] = None) -> None:
        """Clip ``grads`` and update ``params`` in place (both flat, on the backend's device).

        ``support``, when given, says where ``grads`` can be non-zero; an optimizer that is not
        :attr:`sparse_safe` must ignore it.
        """
        raise NotImplementedError

    @staticmethod
    def sparse_parts(support: GradientSupport, *flats: Array) -> Tuple[List[Array], List[Array]]:
        """For each flat array: its dense prefix (a view) and the matrix of its rows (a view)
        that ``support.rows`` indexes."""
        d, r = support.dense, support.row_size
        return [f[:d] for f in flats], [f[d:].reshape(-1, r) for f in flats]

    def describe(self) -> str:
        """One line for logs and reports."""
        clip = f"clip {self.clip:g}" if self.clip else "no clip"
        return f"{self.name} (eta {self.eta:g}, {clip})"

    def state_dict(self) -> Dict[str, Any]:
        """Host copies of everything :meth:`load_state_dict` needs to continue exactly."""
        return {"eta": self.eta}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.eta = float(state["eta"])

    def _load_array(self, state: Dict[str, Any], key: str) -> Array:
        value = numpy.array(state[key])  # a copy: the caller's dict must not alias our state
        if value.shape != (self.size,):
            raise ValueError(f"optimizer state {key!r} has shape {value.shape}, expected ({self.size},)")
        if value.dtype.kind != "f" or not numpy.isfinite(value).all():
            raise ValueError(f"optimizer state {key!r} is not an array of finite numbers")
        return self.backend.asarray(value, dtype=self.backend.dtype)
