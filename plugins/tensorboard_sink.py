"""``--tensorboard``: the metrics log as TensorBoard event files in the run directory's
``tensorboard/`` folder, written with tensorboardX (no TensorFlow), from the extra
``pip install 'charrnn-kit[tensorboard]'``.

Each key of :mod:`charrnn.metrics` is a scalar of that name, stepped by update, and the run's
configuration is a text entry. ``tensorboard --logdir runs`` shows every run under ``runs/``,
each named by its directory.

A resumed run opens a new event file whose ``purge_step`` is the first update after its
checkpoint, so TensorBoard drops what a killed process wrote past that checkpoint, and the
curves hold one series, as ``metrics.csv`` does. A run that turns ``--tensorboard`` on at a
resume gets the earlier rows of its metrics log first.
"""
from __future__ import annotations

import importlib.util
import json
import os
import time
from typing import Any, Mapping, Optional, Sequence

from charrnn import hookimpl
from charrnn.config import Option
from charrnn.errors import CharrnnError
from charrnn.metrics import COLUMNS, UPDATE, MetricsSink, Row
from charrnn.reporting import ReportSection

#: The folder in the run directory.
EVENTS_DIR = "tensorboard"
REPORT_SECTION = 44


def has_events(folder: str) -> bool:
    try:
        return any(name.startswith("events.out.tfevents") for name in os.listdir(folder))
    except OSError:
        return False


class TensorBoardSink(MetricsSink):
    name = "tensorboard"
    files = (EVENTS_DIR,)

    def __init__(self) -> None:
        super().__init__()
        self.writer: Any = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Optional["TensorBoardSink"]:
        if not options.get("tensorboard"):
            return None
        if importlib.util.find_spec("tensorboardX") is None:
            raise CharrnnError("--tensorboard needs tensorboardX, which is not installed; "
                               "pip install 'charrnn-kit[tensorboard]', or leave --tensorboard "
                               "out")
        return cls()

    def open(self, trainer) -> int:
        if not trainer.run_dir:
            return 0
        from tensorboardX import SummaryWriter

        folder = os.path.join(trainer.run_dir, EVENTS_DIR)
        held = trainer.update if has_events(folder) else 0
        # purge_step: TensorBoard discards what earlier files hold from this step on. Its reader
        # takes the files in the order of their names, which begin with the second they were
        # made in: the suffix keeps two made in the same second apart, and in order.
        self.writer = SummaryWriter(folder, purge_step=held + 1 if held else None,
                                    flush_secs=30, filename_suffix=f".{time.time_ns()}")
        if not held:
            config = json.dumps(trainer.config, indent=2, sort_keys=True, default=str)
            self.writer.add_text("config", "\n".join("    " + line
                                                     for line in config.splitlines()), 0)
        return held

    def write(self, rows: Sequence[Row]) -> None:
        if self.writer is None:
            return
        for row in rows:
            for key in COLUMNS:
                if key != UPDATE and row.get(key) is not None:
                    self.writer.add_scalar(key, float(row[key]), row[UPDATE])
        # Rows come every --log-every updates: each is on disk before the next update.
        self.writer.flush()

    def close(self, trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@hookimpl
def register_callbacks(register):
    register(TensorBoardSink)


@hookimpl
def add_run_options(add_option):
    add_option(Option("tensorboard", bool, False,
                      help="Also write the metrics as TensorBoard event files in the run "
                           "directory's tensorboard/ folder (needs the tensorboard extra)."))


@hookimpl
def report_sections(trainer):
    if not has_events(os.path.join(trainer.run_dir or "", EVENTS_DIR)):
        return None
    return ReportSection("TensorBoard", f"The metrics are also in TensorBoard's event files in "
                                        f"[{EVENTS_DIR}/]({EVENTS_DIR}/): "
                                        f"`tensorboard --logdir {EVENTS_DIR}` in this folder "
                                        "shows them.\n", REPORT_SECTION)
