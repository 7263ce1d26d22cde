"""An example third-party charrnn plugin: metrics as JSON lines.

Every ``--jsonl-every`` updates it appends one JSON object to ``metrics.jsonl`` in the run
directory, and one more with ``"event": "end"`` when training ends. Between those lines
``on_update_end`` does a single modulo check: the losses live on the device, and reading them
(``smooth_loss_value()``) synchronises it.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Mapping, Optional

from charrnn import Option, hookimpl
from charrnn.callbacks import Callback, Order
from charrnn.reporting import ReportSection

__version__ = "0.1.0"


class JsonlLogger(Callback):
    name = "jsonl"
    # After everything that publishes a value (validation, the sampler, the checkpoints, early
    # stopping); before the progress line and the report.
    order = Order.LOGGERS

    def __init__(self, every: int = 1000) -> None:
        self.every = every
        self.path: Optional[str] = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Optional["JsonlLogger"]:
        return cls(every=int(options.get("jsonl_every") or 1000))

    def on_train_begin(self, trainer) -> None:
        if trainer.run_dir:
            self.path = os.path.join(trainer.run_dir, "metrics.jsonl")

    def on_update_end(self, trainer) -> None:
        if trainer.update % self.every == 0:  # the only work done on every update
            self.write(self.record(trainer))

    def on_train_end(self, trainer) -> None:
        record = self.record(trainer)
        record["event"] = "end"
        if trainer.stop_reason:
            record["stop_reason"] = trainer.stop_reason
        self.write(record)

    def record(self, trainer) -> Dict[str, Any]:
        record: Dict[str, Any] = {
            "update": trainer.update,
            "epoch": trainer.epoch,
            "smooth_loss": trainer.smooth_loss_value(),  # syncs the device: only here
            "loss": trainer.loss_value(),
            "updates_per_second": trainer.updates_per_second(),
            "timestamp": time.time(),  # Unix seconds
        }
        if "val_loss" in trainer.logs:
            record["val_loss"] = trainer.logs["val_loss"]
        return record

    def write(self, record: Dict[str, Any]) -> None:
        if self.path is None:  # a trainer built from Python without a run directory
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


@hookimpl
def register_callbacks(register):
    register(JsonlLogger)


@hookimpl
def report_sections(trainer):
    """A line in the run's report.md saying where the JSON lines are (when this run wrote
    them)."""
    path = os.path.join(trainer.run_dir or "", "metrics.jsonl")
    if not any(isinstance(cb, JsonlLogger) for cb in trainer.callbacks) or \
            not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        lines = sum(1 for _ in fh)
    return ReportSection("Metrics as JSON lines",
                         f"{lines:,} lines in [metrics.jsonl](metrics.jsonl), one object each.\n",
                         order=25)


@hookimpl
def add_run_options(add_option):
    add_option(Option("jsonl_every", int, 1000, min=1,
                      help="Updates between lines of metrics.jsonl in the run directory."))
