"""What a run says on the terminal: the start-up lines, the stop line, and the :class:`Console`
through which callbacks print during training.

Written to standard output and flushed at once, so that a reader on a pipe (a test, a sweep's log,
``tee``) sees each line as it happens.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, List, Optional, TextIO

from . import __version__
from .stops import Stop

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer


def echo(text: str = "", *, err: bool = False, end: str = "\n", file: Optional[TextIO] = None) -> None:
    """``text`` on ``file`` (standard output, or error with ``err``), verbatim and flushed;
    nothing when that stream is closed."""
    stream = file if file is not None else sys.stderr if err else sys.stdout
    if stream is None:
        return
    stream.write(text + end)
    stream.flush()


class Console:
    """The terminal during a run (``trainer.console``): one progress line that a callback may
    rewrite in place, and whole lines that any callback prints.

    On a terminal :meth:`progress` rewrites its line in place; elsewhere (a log, CI) it prints one
    line each time. :meth:`echo` ends a line being rewritten first, so a sample or a file's path
    never lands in the middle of it, and no callback needs to know which one draws progress.
    """

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self._stream = stream
        self._open = False

    @property
    def stream(self) -> Optional[TextIO]:
        return self._stream if self._stream is not None else sys.stdout

    @property
    def interactive(self) -> bool:
        """Whether progress is rewritten in place (standard output is a terminal)."""
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def progress(self, text: str) -> None:
        if self.interactive:
            echo("\r" + text, end="", file=self.stream)
            self._open = True
        else:
            echo(text, file=self.stream)

    def close_line(self) -> None:
        """End a progress line being rewritten in place, if one is."""
        if self._open:
            echo("", file=self.stream)
            self._open = False

    def echo(self, text: str = "", *, err: bool = False) -> None:
        """One line, verbatim, after ending the progress line."""
        self.close_line()
        echo(text, err=err, file=None if err else self.stream)


def announce_start(trainer: "Trainer", run_dir: str, resumed: bool,
                   changes: Optional[List[str]] = None) -> None:
    """The corpus, the model and its budget, where a resume stands, and the run directory."""
    corpus, be, model, stream = trainer.corpus, trainer.backend, trainer.model, trainer.stream
    echo(f"charrnn {__version__}: {corpus.source}, {corpus.length:,} characters, "
         f"{corpus.vocab_size} distinct")
    if getattr(corpus, "cache_note", None):
        echo(corpus.cache_note)
    budget = [f"{trainer.iterations:,} updates" if trainer.iterations is not None else None,
              f"time limit {trainer.time_limit:g} s" if trainer.time_limit else None]
    echo(f"backend {be.describe()}, {be.dtype.name}; model {model.describe()}; "
         f"optimizer {trainer.optimizer.describe()}; batch {stream.batch} x sequence "
         f"{trainer.seq_length}; {', '.join(b for b in budget if b)}")
    if resumed:
        echo(f"resuming at update {trainer.update:,} (epoch {trainer.epoch}, "
             f"smooth loss {trainer.smooth_loss_value():.3f})"
             + (f"; applying {', '.join(changes)}" if changes else ""))
        if trainer.finished():
            echo("the run has done its training; writing its end-of-run files (report, plot) "
                 "from the latest checkpoint")
    echo(f"run directory: {run_dir}")


def announce_stop(trainer: "Trainer", run_dir: str, resumed: bool) -> None:
    """How training ended: updates and speed in training time (validation excluded); a resumed
    process counts its own updates and says where the run stands in all."""
    done = trainer.update - trainer.start_update
    if resumed and done == 0 and getattr(trainer.stop_reason, "kind", None) is not \
            Stop.INTERRUPTED:
        why = f": {trainer.stop_reason}" if trainer.stop_reason else ""
        echo(f"no updates to do{why}; run directory {run_dir}")
        return
    status = f"stopped ({trainer.stop_reason})" if trainer.stop_reason else "done"
    seconds = trainer.training_seconds()
    chars = done * trainer.stream.batch * trainer.stream.seq_length
    session = "this session: " if resumed else ""
    total = f"; update {trainer.update:,} in all" if resumed else ""
    echo(f"{status}: {session}{done:,} updates in {seconds:.1f} s of training "
         f"({done / max(seconds, 1e-9):,.0f} updates/s, {chars / max(seconds, 1e-9):,.0f} "
         f"chars/s){total}, smooth loss {trainer.smooth_loss_value():.3f}; run directory "
         f"{run_dir}")
