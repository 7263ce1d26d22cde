"""The training loop: one update per sequence, callbacks at named events.

The hidden state is carried from one update to the next and reset to zero when the position wraps
to the start of the text (one epoch), as in the course assignment.
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from .backend import Array
from .callbacks import Callback
from .model import RNN
from .optimizer import Optimizer

if TYPE_CHECKING:  # pragma: no cover
    from .checkpoint import Checkpoint

SMOOTHING = 0.999
CLIP = 5.0
#: ``stop_reason`` after Ctrl-C; callbacks' on_train_end still run (the checkpoint is saved).
INTERRUPTED = "interrupted"
#: ``stop_reason`` prefix when the loss stopped being a finite number.
DIVERGED = "training diverged"


class Trainer:
    """Runs updates and owns the state a checkpoint needs to resume exactly."""

    def __init__(self, model: RNN, optimizer: Optimizer, ids: Array, seq_length: int,
                 iterations: int, callbacks: Sequence[Callback] = (),
                 config: Optional[Dict[str, Any]] = None, corpus: Any = None,
                 run_dir: Optional[str] = None, val_ids: Optional[Array] = None) -> None:
        self.model = model
        self.backend = model.backend
        self.optimizer = optimizer
        self.ids = ids
        self.n = int(ids.shape[0])
        self.seq_length = seq_length
        self.iterations = iterations
        self.callbacks: List[Callback] = sorted(callbacks, key=lambda c: getattr(c, "order", 0))
        self.config = dict(config or {})
        self.corpus = corpus
        self.run_dir = run_dir
        self.val_ids = val_ids
        #: Latest values callbacks publish for each other (``val_loss``, ...), saved in checkpoints.
        self.logs: Dict[str, Any] = {}
        # State carried across updates (and across a resume).
        self.update = 0
        self.epoch = 0
        self.position = 0
        self.h = self.backend.zeros(model.m)
        self.smooth_loss: Any = seq_length * math.log(model.K)
        self.loss: Any = None
        #: Set by a callback to end training; checked after each update's callbacks.
        self.should_stop = False
        self.stop_reason: Optional[str] = None
        self.started_at = time.perf_counter()
        self.start_update = 0

    # -- state -------------------------------------------------------------------------------

    def smooth_loss_value(self) -> float:
        """The smooth loss on the host. Reading it synchronises the device: call it when logging."""
        return self.backend.to_float(self.smooth_loss)

    def loss_value(self) -> Optional[float]:
        return None if self.loss is None else self.backend.to_float(self.loss)

    def updates_per_second(self) -> float:
        self.backend.synchronize()
        elapsed = time.perf_counter() - self.started_at
        done = self.update - self.start_update
        return done / elapsed if elapsed > 0 else 0.0

    def current_input(self) -> Array:
        """The input sequence of the next update (after a wrap, the start of the text)."""
        p = 0 if self.position + self.seq_length + 1 > self.n else self.position
        return self.ids[p : p + self.seq_length]

    def checkpoint(self) -> "Checkpoint":
        """Everything needed to continue this run exactly, as host data."""
        from . import __version__
        from .checkpoint import Checkpoint

        be = self.backend
        meta = {
            "charrnn_version": __version__,
            "backend": be.name,
            "dtype": be.dtype.name,
            "optimizer": self.optimizer.name,
            "config": self.config,
            "vocab": list(self.corpus.chars) if self.corpus is not None else None,
            "update": self.update,
            "epoch": self.epoch,
            "position": self.position,
            "next_input_id": int(be.to_numpy(self.current_input()[:1])[0]),
            "smooth_loss": self.smooth_loss_value(),
            "loss": self.loss_value(),
            "logs": self.logs,
            "callbacks": {cb.name: cb.state_dict() for cb in self.callbacks},
        }
        return Checkpoint(meta=meta, params=self.model.get_params(),
                          optimizer=self.optimizer.state_dict(), hidden=be.to_numpy(self.h).copy())

    def restore(self, ckpt: "Checkpoint") -> None:
        """Continue from ``ckpt``: the inverse of :meth:`checkpoint`."""
        meta = ckpt.meta
        self.model.set_params(ckpt.params)
        self.optimizer.load_state_dict(ckpt.optimizer)
        self.h = self.backend.asarray(ckpt.hidden, dtype=self.backend.dtype)
        self.update = int(meta["update"])
        self.epoch = int(meta["epoch"])
        self.position = int(meta["position"])
        self.smooth_loss = float(meta["smooth_loss"])
        self.loss = meta.get("loss")
        self.logs = dict(meta.get("logs") or {})
        states = meta.get("callbacks") or {}
        for cb in self.callbacks:
            if cb.name in states:
                cb.load_state_dict(states[cb.name])

    def validation_loss(self, chunk: int = 1000) -> Optional[float]:
        """Mean cross-entropy per character (nats) over the held-out text, from ``h = 0``.

        The hidden state is carried across chunks so the whole held-out text is read as one
        sequence; the chunking only bounds memory.
        """
        if self.val_ids is None or self.val_ids.shape[0] < 2:
            return None
        ids, n = self.val_ids, int(self.val_ids.shape[0])
        h = self.backend.zeros(self.model.m)
        total = 0.0
        for start in range(0, n - 1, chunk):
            stop = min(start + chunk, n - 1)
            loss, h = self.model.loss(ids[start:stop], ids[start + 1 : stop + 1], h,
                                      return_hidden=True)
            total += loss
        return total / (n - 1)

    def stop(self, reason: str) -> None:
        self.should_stop = True
        self.stop_reason = reason

    # -- training ----------------------------------------------------------------------------

    def train_step(self) -> Any:
        """One update: forward, backward, clip, optimizer step. Returns the loss (on device)."""
        T = self.seq_length
        if self.position + T + 1 > self.n:
            self.position = 0
            self.epoch += 1
            self.h = self.backend.zeros(self.model.m)
        p = self.position
        x = self.ids[p : p + T]
        y = self.ids[p + 1 : p + T + 1]
        loss, self.h = self.model.loss_and_grads(x, y, self.h)
        grads = self.model.grads.flat
        self.backend.clip_(grads, -CLIP, CLIP)
        self.optimizer.step(self.model.params.flat, grads, self.model.support)
        self.position = p + T
        self.update += 1
        self.loss = loss
        self.smooth_loss = SMOOTHING * self.smooth_loss + (1.0 - SMOOTHING) * loss
        return loss

    def fit(self) -> "Trainer":
        callbacks = self.callbacks
        self.started_at = time.perf_counter()
        self.start_update = self.update
        for cb in callbacks:
            cb.on_train_begin(self)
        try:
            while self.update < self.iterations and not self.should_stop:
                self.train_step()
                for cb in callbacks:
                    cb.on_update_end(self)
        except BaseException as exc:
            for cb in callbacks:
                cb.on_exception(self, exc)
            if not isinstance(exc, KeyboardInterrupt):
                raise
            self.stop(INTERRUPTED)
        for cb in callbacks:
            cb.on_train_end(self)
        return self
