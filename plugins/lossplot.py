"""``metrics.csv`` and ``loss.png`` in the run directory: the loss curve of the course assignment.

Every ``--log-every`` updates a row is appended to ``metrics.csv`` (update, epoch, loss, smooth
loss, validation loss where it was computed at that very update, updates per second); every ``--plot-every`` updates and at the end
``loss.png`` is redrawn from those rows. A resumed run drops the rows written after the checkpoint
it resumes from, so the file holds one consistent series with strictly increasing updates.

Reading the losses synchronises the device, so nothing is read between logging intervals.
Matplotlib is imported only when a plot is drawn, and only through its object-oriented API with
the Agg canvas, so the plugin neither needs a display nor changes the backend of a program (a
notebook, say) that runs training in-process.
"""
from __future__ import annotations

import csv
import gc
import io
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import click
from charrnn import hookimpl
from charrnn.callbacks import Callback
from charrnn.files import append_text, atomic_write, atomic_write_text
from charrnn.interrupts import deferred_interrupt
from charrnn.trainer import INTERRUPTED

COLUMNS = ("update", "epoch", "loss", "smooth_loss", "val_loss", "updates_per_second")
METRICS_FILE = "metrics.csv"
PLOT_FILE = "loss.png"

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
    """The rows of a ``metrics.csv`` as dicts of numbers (None where blank or unreadable)."""
    rows: List[Row] = []
    with open(path, newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            update = _num(raw.get("update"))
            if update is None:
                continue  # a line cut short by a crash, or garbage
            row: Row = {key: _num(raw.get(key)) for key in COLUMNS}
            row["update"] = int(update)
            row["epoch"] = None if row["epoch"] is None else int(row["epoch"])
            rows.append(row)
    return rows


def _csv_text(rows: Sequence[Row], header: bool) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([row["update"], "" if row["epoch"] is None else row["epoch"],
                         _fmt(row["loss"]), _fmt(row["smooth_loss"]), _fmt(row["val_loss"]),
                         _fmt(row["updates_per_second"], 1)])
    return buf.getvalue()


def plot_loss(path: str, rows: Sequence[Row], seq_length: int,
              val_points: Sequence[Tuple[int, float]] = (), title: str = "",
              initial: Optional[float] = None) -> None:
    """Draw the smooth loss (and validation loss, when there is one) against the update.

    ``initial``, the smooth loss before the first update, starts the curve at update 0.

    The smooth loss is summed over a sequence of ``seq_length`` characters, as in the
    assignment; the validation loss (nats per character) is multiplied by ``seq_length`` so both
    curves share the left axis, and the right axis reads both in nats per character.
    """
    # The Agg canvas, explicitly and without pyplot: no display needed, no global backend set.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import StrMethodFormatter

    N = max(int(seq_length), 1)
    fig = Figure(figsize=(8, 4.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs = [r["update"] for r in rows if r["smooth_loss"] is not None]
    ys = [r["smooth_loss"] for r in rows if r["smooth_loss"] is not None]
    if initial is not None and math.isfinite(initial) and (not xs or xs[0] > 0):
        xs, ys = [0] + xs, [float(initial)] + ys
    ax.plot(xs, ys, color="tab:blue", linewidth=1.6,
            marker="o" if len(xs) <= 30 else None, markersize=3, label="smooth loss (training)")
    if val_points:
        vx = [u for u, _ in val_points]
        vy = [v * N for _, v in val_points]
        ax.plot(vx, vy, color="tab:orange", linewidth=1.4, marker="s", markersize=3.5,
                label=f"validation loss \u00d7 {N} (held-out text)")
    # Light markers where a new pass over the text begins, when there are few enough to read.
    starts = [b["update"] for a, b in zip(rows, rows[1:])
              if a["epoch"] is not None and b["epoch"] is not None and b["epoch"] > a["epoch"]]
    if 0 < len(starts) <= 12:
        for i, u in enumerate(starts):
            ax.axvline(u, color="0.75", linewidth=0.8, linestyle=":",
                       label="new epoch (approx.)" if i == 0 else None)
    ax.set_xlabel("update")
    ax.set_ylabel(f"smooth loss (nats per sequence of {N} chars)")
    right = ax.secondary_yaxis("right", functions=(lambda y: y / N, lambda y: y * N))
    right.set_ylabel("nats per character")
    ax.set_title(title or "Smooth loss during training")
    ax.grid(True, color="0.9")
    ax.set_xlim(left=0)
    if xs or val_points:
        ax.legend(loc="upper right", frameon=True)
    else:
        ax.text(0.5, 0.5, "no losses logged yet", transform=ax.transAxes, ha="center")
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    fig.tight_layout()
    atomic_write(path, lambda fh, save=fig.savefig: save(fh, format="png"))
    # A figure and its canvas refer to each other: without this each redraw of an overnight run
    # stays in memory until the cycle collector happens to run (3 MB a redraw, measured).
    fig.clear()
    del fig, ax
    gc.collect()


class LossPlot(Callback):
    name = "lossplot"
    # After validation (10), before the checkpoints (20): the row of an update is on disk before
    # the checkpoint of that update, so a kill between the two loses no row (a resume drops the
    # rows after its checkpoint and writes them again). Before the report (200), which shows it.
    order = 18

    def __init__(self, every: int = 1000, plot_every: int = 10_000, plot: bool = True,
                 quiet: bool = False) -> None:
        self.every = every
        self.plot_every = plot_every
        self.plot = plot
        self.quiet = quiet
        #: The rows of ``metrics.csv``, this process's and (after a resume) the earlier ones.
        self.rows: List[Row] = []
        #: (update, validation loss in nats per char) at each distinct validation.
        self.val_points: List[Tuple[int, float]] = []
        #: The smooth loss before the first update, where the curve starts.
        self.initial: Optional[float] = None
        self.metrics_path: Optional[str] = None
        self.plot_path: Optional[str] = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "LossPlot":
        return cls(every=int(options.get("log_every") or 1000),
                   plot_every=int(options.get("plot_every") or 10_000),
                   plot=options.get("plot", True) is not False,
                   quiet=bool(options.get("quiet")))

    # -- events ------------------------------------------------------------------------------

    def on_train_begin(self, trainer) -> None:
        self.rows = []
        self.metrics_path = self.plot_path = None
        if trainer.update == 0:
            self.initial = trainer.smooth_loss_value()
        if trainer.run_dir:
            self.metrics_path = os.path.join(trainer.run_dir, METRICS_FILE)
            self.plot_path = os.path.join(trainer.run_dir, PLOT_FILE)
        # Validation points after the resumed update belong to the abandoned continuation.
        self.val_points = [(u, v) for u, v in self.val_points if u <= trainer.update]
        self._note_validation(trainer)
        if self.metrics_path is None:
            return
        if trainer.update > 0 and os.path.exists(self.metrics_path):
            rows = read_metrics(self.metrics_path)
            kept = [r for r in rows if r["update"] <= trainer.update]
            # Keep the update column strictly increasing, whatever the file went through.
            self.rows = []
            for r in kept:
                if not self.rows or r["update"] > self.rows[-1]["update"]:
                    self.rows.append(r)
            # Rewritten rather than appended to, so that a line cut short by a crash (or an old
            # header) cannot run into the rows this process appends.
            text = _csv_text(self.rows, header=True)
            atomic_write_text(self.metrics_path, text)
        else:
            text = _csv_text([], header=True)
            atomic_write_text(self.metrics_path, text)

    def on_update_end(self, trainer) -> None:
        update = trainer.update
        if update % self.every == 0:
            self.log(trainer)
        if self.plot and update % self.plot_every == 0:
            self.draw(trainer)

    def on_train_end(self, trainer) -> None:
        # The curve ends where training ended; not after Ctrl-C, where the run will go on and
        # such a row would be one that an uninterrupted run never writes.
        if trainer.update > 0 and trainer.stop_reason != INTERRUPTED and \
                (not self.rows or self.rows[-1]["update"] != trainer.update):
            self.log(trainer)
        if self.plot and self.plot_path is not None:
            self.draw(trainer)
            if not self.quiet:
                for cb in trainer.callbacks:  # end a progress line being rewritten in place
                    if hasattr(cb, "close_line"):
                        cb.close_line()
                click.echo(f"loss plot: {self.plot_path}")

    # -- work --------------------------------------------------------------------------------

    def _note_validation(self, trainer) -> None:
        logs = trainer.logs
        if logs.get("val_loss") is None:
            return
        update = int(logs.get("val_update", trainer.update))
        if not self.val_points or update > self.val_points[-1][0]:
            self.val_points.append((update, float(logs["val_loss"])))

    def log(self, trainer) -> None:
        """Append this update's row to ``metrics.csv`` (and to :attr:`rows`)."""
        self._note_validation(trainer)
        logs = trainer.logs
        # Only a value measured at this update: a repeated older one would read as a new one.
        val = logs.get("val_loss") if logs.get("val_update") == trainer.update else None
        row: Row = {"update": trainer.update, "epoch": trainer.epoch,
                    "loss": trainer.loss_value(), "smooth_loss": trainer.smooth_loss_value(),
                    "val_loss": None if val is None else float(val),
                    "updates_per_second": trainer.updates_per_second()}
        self.rows.append(row)
        if self.metrics_path is not None:
            with deferred_interrupt():
                append_text(self.metrics_path, _csv_text([row], header=False))

    def title(self, trainer) -> str:
        cfg = trainer.config
        source = getattr(trainer.corpus, "source", None) or cfg.get("data") or ""
        if cfg.get("data"):
            source = os.path.basename(str(cfg["data"]))
        else:  # the built-in text: its name without the description in parentheses
            source = source.split(" (", 1)[0]
        if len(source) > 40:
            source = source[:37] + "..."
        model = trainer.model
        if "hidden" not in model.options():  # a model without a hidden state
            parts = [model.name]
        elif model.layers > 1:
            parts = [f"{model.name} {model.layers}x{model.hidden}"]
        else:
            parts = [f"{model.name} hidden {model.hidden}"]
        if trainer.batch > 1:
            parts.append(f"batch {trainer.batch}")
        if cfg.get("optimizer"):
            parts.append(f"{cfg['optimizer']} \u03b7={cfg.get('eta')}")
        head = f"Smooth loss: {source}" if source else "Smooth loss"
        return f"{head}\n({', '.join(parts)}; {trainer.update:,} updates)"

    def draw(self, trainer) -> None:
        if self.plot_path is None:
            return
        # A Ctrl-C inside matplotlib's first import would leave it half-imported for good.
        with deferred_interrupt():
            plot_loss(self.plot_path, self.rows, trainer.seq_length, self.val_points,
                      title=self.title(trainer), initial=self.initial)

    # -- checkpoints -------------------------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        return {"val_points": [[u, v] for u, v in self.val_points], "initial": self.initial}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.val_points = [(int(u), float(v)) for u, v in state.get("val_points", [])]
        initial = state.get("initial")
        self.initial = None if initial is None else float(initial)


@hookimpl
def register_callbacks(register):
    register(LossPlot)


@hookimpl
def add_run_options(add_option):
    add_option("--plot-every", type=click.IntRange(min=1), default=10_000, show_default=True,
               help="Updates between redraws of loss.png in the run directory (also drawn at "
                    "the end). metrics.csv gets a row every --log-every updates.")
    add_option("--plot/--no-plot", default=True, show_default=True,
               help="Draw loss.png (the smooth-loss curve). metrics.csv is written either way.")
