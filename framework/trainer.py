"""The training loop: one update per batch of sequences, callbacks at named events.

Each of the B streams carries its state from one update to the next; every state is reset when
the streams wrap to the start of their stripes (one epoch, see :mod:`charrnn.stream`). After each
update, once every callback's :meth:`~charrnn.callbacks.Callback.on_update_end` has run, the loop
checks, in this order, :attr:`Trainer.should_stop`, the update count and the time budget: that is
the one place training ends.
"""
from __future__ import annotations

import math
import time
import uuid
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy

from .backend import Array
from .callbacks import Callback
from .console import Console
from .evaluation import stream_loss
from .errors import CallbackFailed, CharrnnError, os_error_message
from .interrupts import UpdateBoundary
from .metrics import MetricsLog
from .model import Model, State
from .optimizer import Optimizer
from .stream import TextStream
# Re-exported: plugins written for 0.5 import the stop reasons from here.
from .stops import CALLBACK_FAILED as CALLBACK_FAILED  # noqa: F401
from .stops import DIVERGED, TIME_LIMIT
from .stops import INTERRUPTED as INTERRUPTED  # noqa: F401
from .stops import Stop, StopReason, as_stop_reason

if TYPE_CHECKING:  # pragma: no cover
    from .checkpoint import Checkpoint

SMOOTHING = 0.999
#: Updates between divergence checks on a backend whose arrays are on a device (a GPU): each
#: check waits for the device, so it is not made at every update (see ``Trainer._diverged``).
DIVERGENCE_CHECK_EVERY = 100

#: Mixed into the seed of the dropout stream, so it is not the initial weights' stream.
DROPOUT_STREAM = 0x64726F70  # "drop"


def _is_flat(value: Any, size: int) -> bool:
    return isinstance(value, numpy.ndarray) and value.shape == (size,)


class Trainer:
    """Runs updates and owns the state a checkpoint needs to resume exactly.

    ``iterations`` None trains until something else stops it (``time_limit``, a callback).
    ``time_limit`` (seconds) counts training time over the run's whole life, resumed processes
    included, as Lightning's ``max_time`` does.
    """

    def __init__(self, model: Model, optimizer: Optimizer, stream: TextStream,
                 iterations: Optional[int], callbacks: Sequence[Callback] = (),
                 config: Optional[Dict[str, Any]] = None, corpus: Any = None,
                 run_dir: Optional[str] = None, val_ids: Optional[Array] = None,
                 time_limit: Optional[float] = None, seed: int = 0,
                 clip_norm: Optional[float] = None, metrics_every: Optional[int] = None) -> None:
        self.model = model
        self.backend = model.backend
        self.optimizer = optimizer
        self.stream = stream
        self.seq_length = stream.seq_length
        self.batch = stream.batch
        self.iterations = iterations
        self.time_limit = time_limit
        #: ``--clip-norm``: the largest gradient norm per predicted character (see train_step).
        self.clip_norm = clip_norm or None
        callbacks = list(callbacks)
        if metrics_every is not None and not any(isinstance(c, MetricsLog) for c in callbacks):
            callbacks.append(MetricsLog(int(metrics_every)))
        self.callbacks: List[Callback] = sorted(callbacks, key=lambda c: getattr(c, "order", 0))
        #: The run's metrics log (:mod:`charrnn.metrics`): a row every ``metrics_every`` updates,
        #: in metrics.csv and for the callbacks after it; None for a bare training loop.
        self.metrics: Optional[MetricsLog] = next(
            (c for c in self.callbacks if isinstance(c, MetricsLog)), None)
        self.config = dict(config or {})
        self.corpus = corpus
        self.run_dir = run_dir
        self.val_ids = val_ids
        #: The terminal: callbacks print through it (see :class:`~charrnn.console.Console`).
        self.console = Console()
        #: Latest values callbacks publish for each other (``val_loss``, ...), saved in checkpoints.
        self.logs: Dict[str, Any] = {}
        # State carried across updates (and across a resume).
        self.update = 0
        self.state: State = model.zero_state(stream.batch)
        self.smooth_loss: Any = stream.seq_length * math.log(model.K)
        self.loss: Any = None
        #: Dropout masks are drawn from this stream, saved in checkpoints.
        self.rng = numpy.random.default_rng([DROPOUT_STREAM, int(seed) & 0xFFFFFFFFFFFFFFFF])
        #: Seconds spent training before this process (from checkpoints).
        self.seconds_before = 0.0
        #: Seconds this process spent computing validation losses (not counted as training).
        self.validation_seconds = 0.0
        #: Set by a callback to end training; checked after each update's callbacks.
        self.should_stop = False
        self.stop_reason: Optional[StopReason] = None
        #: The update whose loss was not finite (the run then stops: see :meth:`fit`).
        self.diverged_at: Optional[int] = None
        #: Updates between divergence checks: every one where a scalar reads for free (the
        #: backend's arrays are in host memory), else :data:`DIVERGENCE_CHECK_EVERY`, so that a
        #: GPU is not made to wait at every update.
        self.divergence_every = 1 if getattr(self.backend, "host_memory", True) else \
            DIVERGENCE_CHECK_EVERY
        self._first_bad: Any = None  # on the device: the first update whose loss was not finite
        #: Set by a Ctrl-C that arrived while the callbacks of an update were running.
        self.interrupted_mid_update = False
        #: Names the run across its processes: in config.json and every checkpoint, so that a
        #: checkpoint copied in from another run is refused by a resume.
        self.run_id = uuid.uuid4().hex
        #: The signal that stopped training at an update's end (SIGINT or SIGTERM), if any.
        self.interrupt_signal: Optional[int] = None
        #: The error that stopped training, raised again once every callback has ended.
        self.error: Optional[BaseException] = None
        self.started_at = time.perf_counter()
        self.compile_seconds_before = 0.0
        #: When the training loop ended (None while it runs): the end-of-run files that follow
        #: are not training time.
        self.ended_at: Optional[float] = None
        self.start_update = 0

    # -- state -------------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self.stream.epoch

    def smooth_loss_value(self) -> float:
        """The smooth loss on the host. Reading it synchronises the device: call it when logging."""
        return self.backend.to_float(self.smooth_loss)

    def loss_value(self) -> Optional[float]:
        return None if self.loss is None else self.backend.to_float(self.loss)

    def elapsed(self) -> float:
        """Seconds this process has been training (compiling kernels is not training)."""
        end = self.ended_at if self.ended_at is not None else time.perf_counter()
        compiled = getattr(self.backend, "compile_seconds", 0.0) - self.compile_seconds_before
        return end - self.started_at - compiled

    def train_seconds(self) -> float:
        """Seconds of training over the run's life, resumed processes included."""
        return self.seconds_before + self.elapsed()

    def training_seconds(self) -> float:
        """Seconds this process has spent training: since :meth:`fit` began, less the time
        validation took (which is evaluation, not training)."""
        return max(0.0, self.elapsed() - self.validation_seconds)

    def updates_per_second(self) -> float:
        """Updates of this process per second of its :meth:`training_seconds`."""
        self.backend.synchronize()
        seconds = self.training_seconds()
        done = self.update - self.start_update
        return done / seconds if seconds > 0 else 0.0

    def sampling_start(self) -> Tuple[State, int]:
        """Where text sampled now starts: stream 0's state and the next character it reads.

        After an epoch's end that is the start of the text and a fresh state, as the next update
        will see them.
        """
        x0 = int(self.backend.to_numpy(self.stream.next_inputs()[0, :1])[0])
        if self.stream.will_wrap():
            return self.model.zero_state(1), x0
        return self.model.select_state(self.state, 0), x0

    def checkpoint(self) -> "Checkpoint":
        """Everything needed to continue this run exactly, as host data."""
        from . import __version__
        from .checkpoint import Checkpoint
        from .checkpoint.schema import CheckpointMeta

        be, model = self.backend, self.model
        meta = CheckpointMeta(
            charrnn_version=__version__,
            run_id=self.run_id,
            backend=be.name,
            dtype=be.dtype.name,
            model={"name": model.name, "options": model.options(),
                   "shapes": {k: list(v) for k, v in model.shapes.items()}},
            optimizer=self.optimizer.name,
            config=self.config,
            vocab=list(self.corpus.chars) if self.corpus is not None else None,
            update=self.update,
            epoch=self.stream.epoch,
            position=self.stream.position,
            batch_size=self.stream.batch,
            next_input_id=self.sampling_start()[1],
            smooth_loss=self.smooth_loss_value(),
            loss=self.loss_value(),
            train_seconds=self.train_seconds(),
            dropout_rng=self.rng.bit_generator.state,
            logs=self.logs,
            callbacks={cb.name: cb.state_dict() for cb in self.callbacks},
        )
        # Flat optimizer arrays are saved by parameter name, like the parameters themselves.
        optimizer = {key: model.split_flat(value) if _is_flat(value, model.size) else value
                     for key, value in self.optimizer.state_dict().items()}
        return Checkpoint(meta=meta.to_header(), params=model.get_params(), optimizer=optimizer,
                          state=model.state_to_host(self.state))

    def restore(self, ckpt: "Checkpoint") -> None:
        """Continue from ``ckpt``: the inverse of :meth:`checkpoint`."""
        meta = ckpt.meta
        self.run_id = meta.get("run_id") or self.run_id  # files before 0.6.0 name no run
        self.model.set_params(ckpt.params)
        self.optimizer.load_state_dict(
            {key: self.model.join_flat(value) if isinstance(value, dict) else value
             for key, value in ckpt.optimizer.items()})
        self.state = self.model.state_from_host(ckpt.state, self.stream.batch)
        self.stream.load_state_dict(meta)
        self.update = int(meta["update"])
        self.smooth_loss = float(meta["smooth_loss"])
        self.loss = meta.get("loss")
        self.seconds_before = float(meta.get("train_seconds") or 0.0)
        if meta.get("dropout_rng") is not None:
            self.rng.bit_generator.state = meta["dropout_rng"]
        self.logs = dict(meta.get("logs") or {})
        states = meta.get("callbacks") or {}
        for cb in self.callbacks:
            if cb.name in states:
                try:
                    cb.load_state_dict(states[cb.name])
                except Exception as exc:  # a damaged or foreign state: name whose it is
                    raise CharrnnError(
                        f"{ckpt.path or 'the checkpoint'}: the saved state of callback "
                        f"{cb.name!r} cannot be read ({type(exc).__name__}: {exc}); the file is "
                        "damaged or was edited") from None

    def validation_loss(self, batch: Optional[int] = None, chunk: int = 1000) -> Optional[float]:
        """Mean cross-entropy per character (nats) over the held-out text.

        The held-out text is read as ``batch`` contiguous stripes (default: the training batch
        size, as char-rnn evaluates), each from a zero state carried across the whole stripe;
        with ``batch`` 1 the text is read as one sequence. The chunking only bounds memory.
        """
        if self.val_ids is None:
            return None
        return stream_loss(self.model, self.val_ids, batch or self.stream.batch, chunk)

    def validate(self) -> Optional[float]:
        """The validation loss of the parameters as they are now, published in :attr:`logs`
        (``val_loss``, ``val_bpc`` and ``val_update``, the update it was measured at) for every
        callback; None without a validation split. Computed once per update, however many
        callbacks ask: the validation plugin on its schedule, the checkpoints before they judge
        which checkpoint is best (a loss measured at another update belongs to other weights).
        """
        if self.logs.get("val_update") == self.update and self.logs.get("val_loss") is not None:
            return float(self.logs["val_loss"])
        began = time.perf_counter()
        loss = self.validation_loss()
        self.validation_seconds += time.perf_counter() - began
        if loss is not None:
            self.logs["val_loss"] = loss
            self.logs["val_bpc"] = loss / math.log(2)
            self.logs["val_update"] = self.update
        return loss

    def stop(self, reason: "str | StopReason") -> None:
        """End training after this update's callbacks, for ``reason``: words (a requested stop)
        or a :class:`~charrnn.stops.StopReason`."""
        self.should_stop = True
        self.stop_reason = as_stop_reason(reason)

    # -- training ----------------------------------------------------------------------------

    def train_step(self) -> Any:
        """One update: forward, backward, the norm clip (``--clip-norm``) and the optimizer step
        (which clips elementwise). Returns the loss (on device)."""
        model = self.model
        x, y, wrapped = self.stream.next()
        if wrapped:
            self.state = model.zero_state(self.stream.batch)
        loss, self.state = model.loss_and_grads(x, y, self.state, rng=self.rng)
        if self.clip_norm:
            # The loss is summed over the T steps, so its gradient is T times that of the loss
            # per character, on which the norm limit is stated (as PyTorch users state it).
            self.backend.clip_norm_(model.grads.flat, self.clip_norm * self.seq_length)
        self.optimizer.step(model.params.flat, model.grads.flat, model.support)
        self.update += 1
        self.loss = loss
        self.smooth_loss = SMOOTHING * self.smooth_loss + (1.0 - SMOOTHING) * loss
        return loss

    def finished(self) -> bool:
        """Whether the loop ends now: a callback stopped it, or the updates or time ran out."""
        if self.should_stop:
            return True
        if self.iterations is not None and self.update >= self.iterations:
            return True
        if self.time_limit is not None and self.train_seconds() >= self.time_limit:
            self.stop(StopReason(Stop.TIME_LIMIT, f"{TIME_LIMIT} of {self.time_limit:g} s reached"))
            return True
        return False

    # -- divergence --------------------------------------------------------------------------

    def _diverged(self, loss: Any) -> bool:
        """Whether training diverged (and then it is stopped). On the host, every update's loss
        is read; on a device, a non-finite loss is recorded there, without waiting for the
        device, and read every :attr:`divergence_every` updates (and before any checkpoint)."""
        if self.divergence_every == 1:
            value = self.backend.to_float(loss)
            return not math.isfinite(value) and self._diverge(self.update, value)
        xp = self.backend.xp
        if self._first_bad is None:
            self._first_bad = self.backend.asarray(-1)
        self._first_bad = xp.where(~xp.isfinite(loss) & (self._first_bad < 0), self.update,
                                   self._first_bad)
        return self.update % self.divergence_every == 0 and self.check_divergence()

    def check_divergence(self) -> bool:
        """Read what the device recorded (one synchronisation); stop training if a loss was
        not finite. True when training has diverged."""
        if self.diverged_at is not None:
            return True
        if self._first_bad is None:
            return False
        first = int(self.backend.to_float(self._first_bad))
        return first >= 0 and self._diverge(first, math.nan)

    def _diverge(self, update: int, value: float) -> bool:
        self.diverged_at = update
        self.stop(StopReason(Stop.DIVERGED, f"{DIVERGED}: the loss is {value} at update {update}"))
        return True

    @property
    def can_save(self) -> bool:
        """Whether the state now is one to checkpoint: not after a divergence (the parameters
        hold NaN), nor after a callback failed (its state may be half updated), nor after a
        Ctrl-C in the middle of an update's callbacks (a metrics row or a sample of that update
        may be missing, and a resume from it would never write them: the last periodic
        checkpoint is the one to resume from)."""
        if self._first_bad is not None:
            self.check_divergence()  # a device's record is read before anything is saved
        return self.diverged_at is None and self.error is None and not self.interrupted_mid_update

    def _call(self, cb: Callback, event: str) -> None:
        try:
            getattr(cb, event)(self)
        except (CharrnnError, OSError, MemoryError, KeyboardInterrupt):
            raise  # the launcher gives each of these its own line
        except Exception as exc:
            origin = getattr(cb, "origin", None)
            owner = f" (from {origin})" if origin else ""
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise CallbackFailed(
                f"callback {cb.name!r}{owner} failed in {event} at update {self.update}: "
                f"{message}; the run stopped and keeps its last checkpoint. Run with "
                "CHARRNN_DEBUG=1 for the traceback, or with --no-plugins to leave third-party "
                "plugins out") from exc

    def fit(self) -> "Trainer":
        """Train until :meth:`finished`, then end every callback.

        After each update the loss is checked on the host: a NaN or infinite loss stops the run
        at once (no callback sees that update), whatever callbacks are installed. An error in
        training or in a callback stops it too; every callback's ``on_train_end`` still runs (so
        the report and plot reflect what happened, and :attr:`can_save` keeps checkpoints from
        saving a bad state), then the first error is raised again.

        Ctrl-C and SIGTERM stop the loop at the end of the update in progress, after its
        callbacks (:class:`~charrnn.interrupts.UpdateBoundary`), so that what is saved then is
        one whole update and a resume continues exactly; a second one stops at once and saves
        nothing.
        """
        callbacks = self.callbacks
        self.start_update = self.update
        settling = False
        for cb in callbacks:
            self._call(cb, "on_train_begin")
        self.started_at = time.perf_counter()  # the gradient check is not training time
        self.compile_seconds_before = getattr(self.backend, "compile_seconds", 0.0)
        self.ended_at = None
        self.validation_seconds = 0.0  # nor the validation before the first update
        boundary = UpdateBoundary()
        try:
            with boundary:
                while not self.finished():
                    loss = self.train_step()
                    if self._diverged(loss):
                        break
                    settling = True
                    for cb in callbacks:
                        self._call(cb, "on_update_end")
                    settling = False
                    if boundary.pending is not None:  # Ctrl-C or SIGTERM during this update
                        self.interrupt_signal = boundary.pending
                        raise KeyboardInterrupt
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt) and (settling or boundary.hurried):
                self.interrupted_mid_update = True
            if isinstance(exc, KeyboardInterrupt) and self.interrupt_signal is None:
                self.interrupt_signal = boundary.pending  # a second signal hurried the first
            for cb in callbacks:
                try:
                    cb.on_exception(self, exc)
                except Exception:  # already failing: the first error is the one to report
                    pass
            if not isinstance(exc, KeyboardInterrupt):
                self.error = exc
                if isinstance(exc, CallbackFailed):
                    self.stop(StopReason(Stop.CALLBACK_FAILED))
                elif isinstance(exc, OSError):
                    self.stop(StopReason(Stop.ERROR, f"error: {os_error_message(exc)}"))
                else:
                    self.stop(StopReason(Stop.ERROR, f"error: {type(exc).__name__}"))
            else:
                self.stop(StopReason(Stop.INTERRUPTED))
        self.check_divergence()  # on a device, what the last updates recorded
        self.ended_at = time.perf_counter()
        for cb in callbacks:
            try:
                self._call(cb, "on_train_end")
            except Exception as exc:
                if self.error is None:
                    self.error = exc
        if self.error is not None:
            raise self.error
        return self
