"""``report.md`` in the run directory: the whole run on one page, shaped like the course report.

Written at the end of training, after every other callback (checkpoints, loss plot, samples) has
finished: the configuration, the gradient check, the loss curve, samples taken during training,
and a long passage sampled from the best checkpoint.

Of the samples, the report shows those the course assignment asks for (one every 10,000 updates
over the first 100,000) and the last one; a long run takes many more, which stay in
``samples.md`` rather than burying the rest of the report.
"""
from __future__ import annotations

import math
import os
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy
from charrnn import __version__, hookimpl
from charrnn.callbacks import Callback, Order
from charrnn.config import Option
from charrnn.files import atomic_write_text
from charrnn.reporting import fenced, table
from charrnn.sampling import MAX_SAMPLE

REPORT_FILE = "report.md"
LN2 = math.log(2)
#: Mixed into ``--report-seed`` so that the passage's random stream is not the sampler's: with the
#: same seed both would draw the same numbers, and a model that forgets its starting state quickly
#: would then repeat the training samples word for word inside the passage.
STREAM = 0x7265706F7274  # "report"


def passage_rng(seed: int) -> numpy.random.Generator:
    """The passage's random stream for ``--report-seed`` (any int, negative ones included)."""
    return numpy.random.default_rng([STREAM, int(seed) & 0xFFFFFFFFFFFFFFFF])


class Report(Callback):
    name = "report"
    order = Order.REPORT
    files = (REPORT_FILE,)

    @classmethod
    def files_current(cls, run_dir: str, config: Mapping[str, Any]) -> bool:
        """Whether report.md was written after the latest checkpoint (a run with
        ``--no-report`` has nothing missing)."""
        if config.get("report") is False:
            return True
        try:
            return os.path.getmtime(os.path.join(run_dir, REPORT_FILE)) >= \
                os.path.getmtime(os.path.join(run_dir, "latest.npz"))
        except OSError:
            return False

    def __init__(self, passage_length: int = 1000, seed: int = 0, quiet: bool = False) -> None:
        self.passage_length = passage_length
        self.seed = seed
        self.quiet = quiet
        self.path: Optional[str] = None
        #: [first update, last update, updates per second of training] of every process that
        #: trained this run, so that ``charrnn report`` later writes what the run itself wrote.
        self.sessions: List[List[float]] = []
        self._trainer: Any = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Optional["Report"]:
        if options.get("report", True) is False:
            return None
        length = options.get("report_passage_length")
        seed = options.get("report_seed")
        return cls(passage_length=1000 if length is None else int(length),
                   seed=0 if seed is None else int(seed),
                   quiet=bool(options.get("quiet")))

    def on_train_begin(self, trainer) -> None:
        self._trainer = trainer

    def sessions_now(self) -> List[List[float]]:
        """The recorded sessions, and this process's if it has trained."""
        t = self._trainer
        if t is None or t.update <= t.start_update:
            return [list(s) for s in self.sessions]
        return [list(s) for s in self.sessions] + \
            [[t.start_update, t.update, round(t.updates_per_second(), 3)]]

    def state_dict(self) -> Dict[str, Any]:
        return {"sessions": self.sessions_now()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        sessions = state.get("sessions") or []
        if not isinstance(sessions, list) or not all(
                isinstance(s, list) and len(s) == 3 and all(isinstance(v, (int, float))
                                                            for v in s) for s in sessions):
            raise ValueError("its sessions are not [first, last, speed] triples")
        self.sessions = [list(s) for s in sessions]

    def on_train_end(self, trainer) -> None:
        if not trainer.run_dir:
            return
        self.path = os.path.join(trainer.run_dir, REPORT_FILE)
        atomic_write_text(self.path, self.render(trainer))
        if not self.quiet:
            trainer.console.echo(f"report: {self.path}")

    # -- the pieces --------------------------------------------------------------------------

    def best_checkpoint(self, trainer):
        from charrnn.checkpoint import load_checkpoint
        from charrnn.errors import CharrnnError

        path = os.path.join(trainer.run_dir, "best.npz")
        if not os.path.exists(path):
            return None, "no best.npz in the run directory"
        try:
            return load_checkpoint(path), None
        except CharrnnError as exc:
            return None, str(exc)

    def passage(self, trainer, ckpt) -> Tuple[str, str]:
        """The passage and a sentence on where it came from."""
        from charrnn.generate import checkpoint_state
        from charrnn.sampling import sample_ids
        from charrnn.assembly import model_from_checkpoint

        cfg = trainer.config
        temperature = float(cfg.get("temperature") or 1.0)
        top_k = cfg.get("top_k")
        if ckpt is not None:
            vocab = ckpt.vocab
            model = model_from_checkpoint(ckpt, trainer.backend)
            state = checkpoint_state(ckpt, model)
            x0 = int(ckpt.meta.get("next_input_id", 0))
            origin = (f"the best checkpoint (`best.npz`, update {int(ckpt.meta['update']):,}), "
                      "starting from its saved state (the first stream's) with the next "
                      f"character of its training text ({vocab[x0]!r}) as the first input")
        else:
            vocab = list(trainer.corpus.chars)
            model = trainer.model
            state, x0 = trainer.sampling_start()
            origin = ("the model as it stands at the end of training (update "
                      f"{trainer.update:,}; **no best checkpoint was saved**, so this is not "
                      "necessarily the best model), starting from the current state with "
                      f"the next character of the training text ({vocab[x0]!r}) as the first input")
        ids = sample_ids(model, state, x0, self.passage_length, temperature=temperature,
                         top_k=top_k, rng=passage_rng(self.seed))
        how = f"temperature {temperature:g}" + (f", top-k {top_k}" if top_k else "")
        return "".join(vocab[i] for i in ids), (
            f"{self.passage_length:,} characters sampled from {origin}; {how}, "
            f"seed {self.seed} (`--report-seed`).")

    def configuration(self, trainer, ckpt) -> List[Tuple[str, Any]]:
        cfg = trainer.config
        corpus = trainer.corpus
        be = trainer.backend
        N = trainer.seq_length
        smooth = trainer.smooth_loss_value()
        rows: List[Tuple[str, Any]] = []
        if corpus is not None:
            rows.append(("corpus", corpus.source))
            rows.append(("corpus length", f"{corpus.length:,} characters"))
            rows.append(("vocabulary size K", f"{corpus.vocab_size} distinct characters"))
        else:
            rows.append(("vocabulary size K", trainer.model.K))
        stream = trainer.stream
        train_chars = stream.characters
        if trainer.val_ids is not None:
            val_chars = int(trainer.val_ids.shape[0])
            rows.append(("training / validation split",
                         f"{train_chars:,} / {val_chars:,} characters "
                         f"(`--val-frac {cfg.get('val_frac')}`)"))
        else:
            rows.append(("training text", f"{train_chars:,} characters (no validation split)"))
        rows.append(("backend", f"{be.describe()}"))
        rows.append(("dtype", be.dtype.name))
        rows.append(("model", trainer.model.describe()))
        rows.append(("optimizer", trainer.optimizer.describe()))
        rows.append(("batch", f"{stream.batch} stream(s) of {N} characters per update"
                     + (f" ({stream.length:,} characters per stripe)" if stream.batch > 1 else "")))
        if "sigma" in cfg:
            rows.append(("initial weights", f"normal, sigma {cfg['sigma']}, seed {cfg.get('seed')}"))
        requested = (f"{trainer.iterations:,}" if trainer.iterations is not None
                     else "no fixed number of")
        trained = [sess for sess in self.sessions_now() if sess[1] > sess[0]]
        last = trained[-1] if trained else None
        rows.append(("updates done", f"{trainer.update:,} of {requested} requested"
                     + (f" (resumed at update {int(last[0]):,})" if last and last[0] else "")))
        rows.append(("ended", f"stopped: {trainer.stop_reason}" if trainer.stop_reason
                     else "finished"))
        if trainer.time_limit:
            rows.append(("time limit", f"{trainer.time_limit:g} s of training; "
                                       f"{trainer.train_seconds():.1f} s used"))
        rows.append(("epochs", f"{trainer.epoch} completed ({stream.passes():.2f} passes over the "
                               "training text)"))
        rows.append(("final smooth loss", f"{smooth:.3f} per sequence of {N} characters "
                     f"({smooth / N:.4f} nats/char, {smooth / N / LN2:.4f} bits/char)"))
        if ckpt is not None:
            meta = ckpt.meta
            val = (meta.get("logs") or {}).get("val_loss")
            metric = (f"validation loss {val:.4f} nats/char ({val / LN2:.4f} bits/char)"
                      if val is not None else f"smooth loss {float(meta['smooth_loss']):.3f}")
            rows.append(("best checkpoint", f"`best.npz`: update {int(meta['update']):,}, {metric}"))
        else:
            rows.append(("best checkpoint", "none saved"))
        logs = trainer.logs
        if logs.get("val_loss") is not None:
            val = float(logs["val_loss"])
            bpc = float(logs.get("val_bpc", val / LN2))
            at = logs.get("val_update")
            rows.append(("validation loss", f"{val:.4f} nats/char, {bpc:.4f} bits/char"
                         + (f" (at update {int(at):,})" if at is not None else "")))
        if last is not None:  # the speed of the process that trained last, in training time
            done, ups = int(last[1] - last[0]), float(last[2])
            rows.append(("speed", f"{ups:,.0f} updates/s, {ups * stream.batch * N:,.0f} "
                                  f"characters/s (the last process that trained, {done:,} "
                                  "updates; validation not counted)"))
        return rows

    def optionstable(self, trainer) -> str:
        cfg = trainer.config
        rows = []
        for key in sorted(cfg):
            value = cfg[key]
            if isinstance(value, bool):
                shown = "on" if value else "off"
            elif value is None:
                shown = "(not set)"
            else:
                shown = value
            rows.append((f"`--{key.replace('_', '-')}`", shown))
        return table(rows, ("option", "value"))

    def render(self, trainer) -> str:
        run_dir = trainer.run_dir
        ckpt, why_none = self.best_checkpoint(trainer)
        out: List[str] = []
        name = os.path.basename(os.path.normpath(run_dir))
        out.append(f"# Character-level {trainer.model.name}: run `{name}`\n")
        out.append(f"Written by charrnn {__version__} on {time.strftime('%Y-%m-%d %H:%M:%S')} "
                   f"in `{run_dir}`. A character-level {trainer.model.name} model trained with "
                   "back-propagation through time on sequences of characters.\n")

        out.append("## Configuration\n")
        out.append(table(self.configuration(trainer, ckpt), ("setting", "value")) + "\n")
        out.append("Every option of the run is listed at the end, under *All options*.\n")

        from charrnn.registry import get_registry

        for section in get_registry().report_sections(trainer):
            out.append(f"## {section.title}\n")
            out.append(section.body)

        out.append(f"## A {self.passage_length:,}-character passage from the best model\n")
        if ckpt is None and trainer.corpus is None:
            out.append("No passage: there is neither a best checkpoint nor a corpus vocabulary "
                       "to decode the current model's output with.\n")
        elif ckpt is None and trainer.diverged_at is not None:
            out.append(f"No passage: training diverged at update {trainer.diverged_at:,} before "
                       "any checkpoint was saved, so there is no finite model to sample from.\n")
        else:
            text, origin = self.passage(trainer, ckpt)
            if ckpt is None and why_none:
                origin += f" ({why_none}.)"
            out.append(origin + "\n")
            out.append(fenced(text) + "\n")

        out.append("## All options\n")
        out.append("As given to `charrnn run` or taken by default (saved in `config.json`).\n")
        out.append(self.optionstable(trainer) + "\n")
        return "\n".join(out)


@hookimpl
def register_callbacks(register):
    register(Report)


@hookimpl
def add_run_options(add_option):
    add_option(Option('report', bool, True,
                      help="Write report.md in the run directory at the end: configuration, gradient "
                           "check, loss plot, the samples every 10,000 updates up to 100,000 and the "
                           "last, and a passage from the best checkpoint."))
    add_option(Option('report_passage_length', int, 1000, min=1, max=MAX_SAMPLE,
                      help="Characters of the report's passage from the best model."))
    add_option(Option('report_seed', int, 0,
                      help="Seed for sampling the report's passage (a stream of its own, not the "
                           "samples')."))


@hookimpl
def register_commands(cli):
    from .cli import register  # Click only where the command is

    register(cli)
