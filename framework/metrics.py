"""The run's metrics log, which the trainer owns: a row every ``--log-every`` updates and one at
the end, kept in memory for callbacks (``trainer.metrics.rows``) and written to ``metrics.csv``
in the run directory; :func:`read_metrics` reads it back.

The keys of a row are the constants below, the columns of ``metrics.csv`` in this order. The
trainer fills in the update, epoch, losses and speed; ``val_loss`` is the validation loss when
one was measured at that very update (``trainer.validate()``, which the validation plugin and the
checkpoints call), so a repeated older value never reads as a new one.

A resumed run drops the rows written after the checkpoint it resumes from and writes them again,
so the file holds one consistent series with strictly increasing updates. Rows go to disk before
the checkpoint of the same update (:attr:`~charrnn.callbacks.Order.METRICS`), so a kill between
the two loses no row. Other sinks (TensorBoard, MLflow, yours) are plugins built on
:class:`MetricsSink`, which hands them the log's rows they do not hold yet.
"""
from __future__ import annotations

import csv
import io
import math
import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from .callbacks import Callback, Order
from .files import append_text, atomic_write_text
from .interrupts import deferred_interrupt
from .stops import Stop

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

#: The keys of a metrics row, and the columns of metrics.csv, in order.
UPDATE = "update"
EPOCH = "epoch"
LOSS = "loss"
SMOOTH_LOSS = "smooth_loss"
VAL_LOSS = "val_loss"
UPDATES_PER_SECOND = "updates_per_second"
COLUMNS = (UPDATE, EPOCH, LOSS, SMOOTH_LOSS, VAL_LOSS, UPDATES_PER_SECOND)
#: The file in the run directory.
METRICS_FILE = "metrics.csv"

Row = Dict[str, Any]


def _fmt(value: Optional[float], digits: int = 6) -> str:
    if value is None:
        return ""
    value = float(value)
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def _num(text: Optional[str]) -> Optional[float]:
    if text is None or text.strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def read_metrics(path: str) -> List[Row]:
    """The metrics rows of a run (its directory, or its ``metrics.csv``) as dicts of numbers:
    ``update`` and ``epoch`` whole, the others floats, None where blank or unreadable. A line
    cut short by a crash is skipped; a run without a metrics file has none."""
    if os.path.isdir(path):
        path = os.path.join(path, METRICS_FILE)
    rows: List[Row] = []
    try:
        fh = open(path, newline="", encoding="utf-8")
    except FileNotFoundError:
        return rows
    with fh:
        for raw in csv.DictReader(fh):
            update = _num(raw.get(UPDATE))
            if update is None:
                continue  # a line cut short by a crash, or garbage
            row: Row = {key: _num(raw.get(key)) for key in COLUMNS}
            row[UPDATE] = int(update)
            row[EPOCH] = None if row[EPOCH] is None else int(row[EPOCH])
            rows.append(row)
    return rows


def csv_text(rows: Sequence[Row], header: bool) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([row[UPDATE], "" if row[EPOCH] is None else row[EPOCH],
                         _fmt(row[LOSS]), _fmt(row[SMOOTH_LOSS]), _fmt(row[VAL_LOSS]),
                         _fmt(row[UPDATES_PER_SECOND], 1)])
    return buf.getvalue()


class MetricsLog(Callback):
    """The metrics log of one run (``trainer.metrics``), run among the callbacks at
    :attr:`Order.METRICS`."""

    name = "metrics"
    order = Order.METRICS

    def __init__(self, every: int = 1000) -> None:
        self.every = every
        #: The rows of the run: this process's and, after a resume, the earlier ones.
        self.rows: List[Row] = []
        #: The row written at this update, or None (what a sink reads after the log has run).
        self.last_row: Optional[Row] = None
        self.path: Optional[str] = None

    def on_train_begin(self, trainer) -> None:
        self.rows, self.last_row = [], None
        self.path = os.path.join(trainer.run_dir, METRICS_FILE) if trainer.run_dir else None
        if self.path is None:
            return
        if trainer.update > 0 and os.path.exists(self.path):
            kept = [r for r in read_metrics(self.path) if r[UPDATE] <= trainer.update]
            for r in kept:  # strictly increasing, whatever the file went through
                if not self.rows or r[UPDATE] > self.rows[-1][UPDATE]:
                    self.rows.append(r)
        # Rewritten rather than appended to, so that a line cut short by a crash (or an old
        # header) cannot run into the rows this process appends.
        atomic_write_text(self.path, csv_text(self.rows, header=True))

    def on_update_end(self, trainer) -> None:
        self.last_row = None
        if trainer.update % self.every == 0:
            self.log(trainer)

    def on_train_end(self, trainer) -> None:
        # The series ends where training ended; not after Ctrl-C, where the run will go on and
        # such a row would be one that an uninterrupted run never writes.
        if trainer.update > 0 and getattr(trainer.stop_reason, "kind", None) is not \
                Stop.INTERRUPTED and \
                (not self.rows or self.rows[-1][UPDATE] != trainer.update):
            self.log(trainer)

    def log(self, trainer) -> Row:
        """This update's row: kept, appended to metrics.csv, and left in :attr:`last_row`."""
        logs = trainer.logs
        val = logs.get("val_loss") if logs.get("val_update") == trainer.update else None
        row: Row = {UPDATE: trainer.update, EPOCH: trainer.epoch, LOSS: trainer.loss_value(),
                    SMOOTH_LOSS: trainer.smooth_loss_value(),
                    VAL_LOSS: None if val is None else float(val),
                    UPDATES_PER_SECOND: trainer.updates_per_second()}
        self.rows.append(row)
        self.last_row = row
        if self.path is not None:
            with deferred_interrupt():
                append_text(self.path, csv_text([row], header=False))
        return row


class MetricsSink(Callback):
    """The base of a plugin that sends the metrics log somewhere else (TensorBoard, MLflow, a
    database): it runs at :attr:`Order.LOGGERS`, after the log has written this update's row,
    and hands :meth:`write` every row of ``trainer.metrics`` it has not written yet, the earlier
    runs' rows included when the sink is new to a resumed run. A sink implements :meth:`open`,
    :meth:`write` and, if it holds anything open, :meth:`close`.
    """

    order = Order.LOGGERS

    def __init__(self) -> None:
        #: The update of the last row written (0 before any).
        self.written = 0
        self._log: Optional[MetricsLog] = None

    def open(self, trainer: "Trainer") -> int:
        """Open the sink for this process; return the last update it already holds from an
        earlier process of this run (0 when it holds none, and then it gets them all).

        A run resumes from its checkpoint at ``trainer.update``: rows after that, which a
        process killed after its last checkpoint may have sent, are written again by this one,
        so a sink that can drop them (TensorBoard's ``purge_step``) should."""
        return 0

    def write(self, rows: Sequence[Row]) -> None:
        """Send ``rows`` (metrics rows, oldest first, each newer than the last written)."""
        raise NotImplementedError

    def close(self, trainer: "Trainer") -> None:
        """Flush and release whatever :meth:`open` opened; ``trainer.stop_reason`` says why
        training ended (None when it did all its updates)."""

    # -- events ------------------------------------------------------------------------------

    def on_train_begin(self, trainer: "Trainer") -> None:
        self._log = getattr(trainer, "metrics", None)
        self.written = min(int(self.open(trainer)), trainer.update)
        self._send()

    def on_update_end(self, trainer: "Trainer") -> None:
        self._send()

    def on_train_end(self, trainer: "Trainer") -> None:
        try:
            self._send()
        finally:
            self.close(trainer)

    def _send(self) -> None:
        rows = self._log.rows if self._log is not None else []
        if not rows or rows[-1][UPDATE] <= self.written:
            return
        fresh = [r for r in rows if r[UPDATE] > self.written]
        with deferred_interrupt():
            self.write(fresh)
        self.written = fresh[-1][UPDATE]
