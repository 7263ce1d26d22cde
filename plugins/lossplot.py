"""``loss.png`` in the run directory: the loss curve of the course assignment.

Every ``--plot-every`` updates and at the end ``loss.png`` is redrawn from the rows of the run's
metrics log (:mod:`charrnn.metrics`, which the trainer keeps and writes to ``metrics.csv``), with
the validation loss at every update it was measured.

The plot marks the update at which each epoch began, worked out from the text stream rather than
read from the rows, which come too seldom to place them; when there are many epochs, only every
2nd, 5th, 10th, 20th, ... is marked, and the legend says which.

Reading the losses synchronises the device, so nothing is read between logging intervals.
Matplotlib is imported only when a plot is drawn, and only through its object-oriented API with
the Agg canvas, so the plugin neither needs a display nor changes the backend of a program (a
notebook, say) that runs training in-process.
"""
from __future__ import annotations

import gc
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from charrnn import hookimpl
from charrnn.callbacks import Callback, Order
from charrnn.metrics import METRICS_FILE
from charrnn.config import Option
from charrnn.files import atomic_write
from charrnn.interrupts import deferred_interrupt
from charrnn.reporting import LOSS_SECTION, ReportSection, round_step

PLOT_FILE = "loss.png"
#: The most epochs marked on the plot; past that, every 2nd, 5th, 10th, 20th, ... is marked.
MOST_EPOCH_MARKS = 10
#: The ``gid`` of the lines that mark epochs and of the top axis that names them, by which a
#: reader of the figure (a test, a notebook) finds them.
EPOCH_GID = "epoch-start"
EPOCH_AXIS_GID = "epoch-axis"

Row = Dict[str, Any]


def updates_per_epoch(stream) -> int:
    """How many updates one pass over the training text takes: the same for every epoch.

    By the stream's rule an update reads ``seq_length + 1`` characters of each stripe from
    positions 0, T, 2T, ..., as long as they fit in the stripe's ``length`` characters, so an
    epoch holds ``(length - 1) // T`` updates. The data, the batch and the sequence length are
    fixed for a run's whole life (a resume refuses to change them), so this one number places
    every epoch of the run, those of earlier processes included, without any record of them.
    """
    return (int(stream.length) - 1) // int(stream.seq_length)


def epoch_marks(epochs: int, per_epoch: int, until: Optional[int] = None,
                most: int = MOST_EPOCH_MARKS) -> Tuple[int, List[Tuple[int, int]]]:
    """``(step, [(epoch, first update of that epoch), ...])`` for the marked epochs.

    Epochs count from 0 as the trainer, ``metrics.csv`` and the progress line count them, so
    epoch k begins with update ``k * per_epoch + 1``, the first update that reads the start of
    the text again. Only the marked epochs are listed (a damaged checkpoint's epoch count
    cannot make a list of millions), and none after ``until``, the update the plot ends at.
    """
    step = round_step(epochs, most)
    marks = [(k, k * per_epoch + 1) for k in range(step, int(epochs) + 1, step)]
    if until is not None:
        marks = [(k, u) for k, u in marks if u <= until]
    return step, marks


def epoch_labels(epochs: Sequence[int]) -> List[str]:
    """The top axis's label for each marked epoch: "epoch 3" on every mark while that fits,
    and past epoch 99, where ten such labels would run into each other, "epoch" on the first
    mark only, the others read as a ruler ("epoch 100", "200", "300", ...)."""
    if not epochs or max(epochs) < 100:
        return [f"epoch {k:,}" for k in epochs]
    return [f"epoch {k:,}" if i == 0 else f"{k:,}" for i, k in enumerate(epochs)]


def loss_figure(rows: Sequence[Row], seq_length: int,
                val_points: Sequence[Tuple[int, float]] = (), title: str = "",
                initial: Optional[float] = None, epochs: Sequence[Tuple[int, int]] = (),
                epoch_step: int = 1):
    """The smooth loss (and validation loss, when there is one) against the update, as a
    matplotlib Figure on the Agg canvas, for :func:`plot_loss` to save (and tests to read).

    ``initial``, the smooth loss before the first update, starts the curve at update 0.
    ``epochs`` lists ``(epoch, update)`` for the epochs to mark (see :func:`epoch_marks`), one
    of every ``epoch_step``: a dotted line at the update each began, labelled on the top axis.

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
    if epochs:
        # Light lines behind the curves, named on a top axis where no curve or legend sits.
        label = "start of an epoch" if epoch_step == 1 else \
            f"start of an epoch (every {epoch_step:,} epochs marked)"
        for i, (_, update) in enumerate(epochs):
            ax.axvline(update, color="0.6", linewidth=0.8, linestyle=":", zorder=0.5,
                       gid=EPOCH_GID, label=None if i else label)
        top = ax.secondary_xaxis("top")
        top.set_gid(EPOCH_AXIS_GID)
        top.set_xticks([u for _, u in epochs], labels=epoch_labels([k for k, _ in epochs]))
        top.tick_params(axis="x", labelsize=8, colors="0.35", length=3)
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
    return fig


def plot_loss(path: str, rows: Sequence[Row], seq_length: int,
              val_points: Sequence[Tuple[int, float]] = (), title: str = "",
              initial: Optional[float] = None, epochs: Sequence[Tuple[int, int]] = (),
              epoch_step: int = 1) -> None:
    """Draw :func:`loss_figure` into the PNG file ``path``, replacing it whole."""
    fig = loss_figure(rows, seq_length, val_points, title, initial, epochs, epoch_step)
    atomic_write(path, lambda fh, save=fig.savefig: save(fh, format="png"))
    # A figure and its canvas refer to each other: without this each redraw of an overnight run
    # stays in memory until the cycle collector happens to run (3 MB a redraw, measured).
    fig.clear()
    del fig
    gc.collect()


class LossPlot(Callback):
    name = "lossplot"
    files = (PLOT_FILE,)
    # Right after the metrics log, so that a plot drawn at an update holds that update's row.
    order = Order.METRICS + 1

    def __init__(self, plot_every: int = 10_000, plot: bool = True, quiet: bool = False) -> None:
        self.plot_every = plot_every
        self.plot = plot
        self.quiet = quiet
        #: (update, validation loss in nats per char) at each distinct validation.
        self.val_points: List[Tuple[int, float]] = []
        #: The smooth loss before the first update, where the curve starts.
        self.initial: Optional[float] = None
        self.plot_path: Optional[str] = None
        self._metrics: Any = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "LossPlot":
        # Also with --no-plot: it keeps the validation points, so that a resume with --plot
        # draws the whole curve.
        return cls(plot_every=int(options.get("plot_every") or 10_000),
                   plot=options.get("plot", True) is not False,
                   quiet=bool(options.get("quiet")))

    @property
    def rows(self) -> List[Row]:
        """The rows of the run's metrics log (none without one)."""
        return list(self._metrics.rows) if self._metrics is not None else []

    # -- events ------------------------------------------------------------------------------

    def on_train_begin(self, trainer) -> None:
        self._metrics = trainer.metrics
        self.plot_path = os.path.join(trainer.run_dir, PLOT_FILE) if trainer.run_dir else None
        if trainer.update == 0:
            self.initial = trainer.smooth_loss_value()
        # Validation points after the resumed update belong to the abandoned continuation.
        self.val_points = [(u, v) for u, v in self.val_points if u <= trainer.update]
        self._note_validation(trainer)

    def on_update_end(self, trainer) -> None:
        self._note_validation(trainer)
        if self.plot and trainer.update % self.plot_every == 0:
            self.draw(trainer)

    def on_train_end(self, trainer) -> None:
        self._note_validation(trainer)
        if self.plot and self.plot_path is not None:
            self.draw(trainer)
            if not self.quiet:
                trainer.console.echo(f"loss plot: {self.plot_path}")

    # -- work --------------------------------------------------------------------------------

    def _note_validation(self, trainer) -> None:
        logs = trainer.logs
        if logs.get("val_loss") is None:
            return
        update = int(logs.get("val_update", trainer.update))
        if not self.val_points or update > self.val_points[-1][0]:
            self.val_points.append((update, float(logs["val_loss"])))

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

    def plot_arguments(self, trainer) -> Dict[str, Any]:
        """What the plot of ``trainer``'s run is drawn from, now.

        The epoch marks come from the text stream's state (its epoch count and the fixed length
        of an epoch), not from the rows: rows are written only every ``--log-every`` updates,
        and a resumed process, or ``charrnn report``, restores the same stream state from the
        checkpoint, so every process draws the same marks an uninterrupted run would.
        """
        step, epochs = epoch_marks(trainer.epoch, updates_per_epoch(trainer.stream),
                                   until=trainer.update)
        return {"rows": self.rows, "seq_length": trainer.seq_length,
                "val_points": self.val_points, "title": self.title(trainer),
                "initial": self.initial, "epochs": epochs, "epoch_step": step}

    def figure(self, trainer):
        """The figure :meth:`draw` would save now (the caller clears it)."""
        return loss_figure(**self.plot_arguments(trainer))

    def draw(self, trainer) -> None:
        if self.plot_path is None:
            return
        # A Ctrl-C inside matplotlib's first import would leave it half-imported for good.
        with deferred_interrupt():
            plot_loss(self.plot_path, **self.plot_arguments(trainer))

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
def report_sections(trainer):
    run_dir = trainer.run_dir or ""
    if os.path.exists(os.path.join(run_dir, PLOT_FILE)):
        body = f"![smooth loss]({PLOT_FILE})\n"
    else:
        body = f"No loss plot was drawn (`{PLOT_FILE}` is absent; see `--plot`).\n"
    if os.path.exists(os.path.join(run_dir, METRICS_FILE)):
        body += f"\nThe numbers behind it are in [{METRICS_FILE}]({METRICS_FILE}).\n"
    return ReportSection("Smooth loss", body, LOSS_SECTION)


@hookimpl
def add_run_options(add_option):
    add_option(Option('plot_every', int, 10_000, min=1,
                      help="Updates between redraws of loss.png in the run directory (also drawn at "
                           "the end). metrics.csv gets a row every --log-every updates."))
    add_option(Option('plot', bool, True,
                      help="Draw loss.png (the smooth-loss curve, with the update at which each epoch "
                           "began marked). metrics.csv is written either way."))
