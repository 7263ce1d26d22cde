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
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import click
import numpy
from charrnn import __version__, hookimpl
from charrnn.callbacks import Callback, Order
from charrnn.config import Option
from charrnn.files import atomic_write_text
from charrnn.plugins.lossplot import round_step
from charrnn.sampling import MAX_SAMPLE

REPORT_FILE = "report.md"
LN2 = math.log(2)
#: Mixed into ``--report-seed`` so that the passage's random stream is not the sampler's: with the
#: same seed both would draw the same numbers, and a model that forgets its starting state quickly
#: would then repeat the training samples word for word inside the passage.
STREAM = 0x7265706F7274  # "report"
#: The assignment's sample schedule: one every ``COURSE_EVERY`` updates up to ``COURSE_UNTIL``.
COURSE_EVERY = 10_000
COURSE_UNTIL = 100_000
#: Up to this many samples the report shows them all: as many as the course schedule shows.
SHOW_ALL = 12


def passage_rng(seed: int) -> numpy.random.Generator:
    """The passage's random stream for ``--report-seed`` (any int, negative ones included)."""
    return numpy.random.default_rng([STREAM, int(seed) & 0xFFFFFFFFFFFFFFFF])


def _cell(value: Any) -> str:
    """A value made safe for one Markdown table cell."""
    text = str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _table(rows: List[Tuple[str, Any]], head: Tuple[str, str] = ("", "")) -> str:
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in rows]
    return "\n".join(lines)


def _fmt_float(value: Any, digits: int = 4) -> str:
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def _sci(value: Any) -> str:
    try:
        return f"{float(value):.2e}"
    except (TypeError, ValueError):
        return str(value)


def gradcheck_table(result: Mapping[str, Any]) -> str:
    """Markdown for a gradient-check result, rendered here when the gradcheck plugin can't."""
    lines = ["| parameter | entries | max relative error | max absolute error |",
             "|---|---:|---:|---:|"]
    for name, entry in (result.get("params") or {}).items():
        entry = entry or {}
        lines.append(f"| {_cell(name)} | {_cell(entry.get('checked', ''))} | "
                     f"{_sci(entry.get('rel'))} | {_sci(entry.get('abs'))} |")
    return "\n".join(lines)


def _gradcheck_markdown(result: Any) -> str:
    if not isinstance(result, Mapping):
        return f"The gradient check left a result this report cannot read: `{_cell(result)}`."
    passed = result.get("passed")
    verdict = "passed" if passed else "FAILED" if passed is not None else "finished"
    has_hidden = "hidden" in result and "hidden" in (result.get("options") or {"hidden": None})
    facts = [f"the {result['model']} model" if "model" in result else None,
             f"hidden size {result['hidden']}" if has_hidden else None,
             f"{result['layers']} layers" if (result.get("layers") or 1) > 1 else None,
             f"batch {result['batch']}" if (result.get("batch") or 1) > 1 else None,
             f"sequence length {result['seq_length']}" if "seq_length" in result else None,
             f"finite-difference step {result['step']}" if "step" in result else None,
             (f"{result['entries']} entries per parameter" if result["entries"]
              else "all entries") if "entries" in result else None,
             f"weights sigma {result['sigma']}" if "sigma" in result else None,
             f"{result['backend']} backend" if "backend" in result else None,
             f"{result['dtype']}" if "dtype" in result else None,
             f"threshold {result['threshold']} on the relative error"
             if "threshold" in result else None]
    facts_text = ", ".join(f for f in facts if f)
    intro = (f"Analytic gradients against centred finite differences"
             f"{' (' + facts_text + ')' if facts_text else ''}: **{verdict}**.")
    try:
        from charrnn.plugins.gradcheck import markdown_table

        table = markdown_table(result)
    except Exception:  # the plugin is missing, broken, or of another version
        table = gradcheck_table(result)
    return f"{intro}\n\n{table}"


def shown_samples(updates: Sequence[int]) -> Tuple[List[int], Optional[int], int]:
    """Which samples the report shows, given the update each was taken at (in order).

    Returns ``(indices, interval, until)``: the samples at update 0 and at each multiple of
    ``interval`` up to ``until``, then the last sample; ``interval`` is None when every sample
    is shown. Where no sample was taken at a multiple, the first one taken after it (and before
    the next multiple) stands in, so a ``--sample-every`` that does not divide the interval
    still gives one sample per interval. A run that ends before the assignment's first
    interval gets the same shape at a round interval of its own, about ten samples.
    """
    count = len(updates)
    if count <= SHOW_ALL:
        return list(range(count)), None, 0
    last = int(updates[-1])
    if last >= COURSE_EVERY:
        interval, until = COURSE_EVERY, COURSE_UNTIL
    else:
        interval, until = round_step(last, SHOW_ALL - 2), last
    chosen: List[int] = []
    i = 0
    for mark in range(0, until + 1, interval):
        while i < count and updates[i] < mark:
            i += 1
        if i < count and updates[i] < mark + interval:
            chosen.append(i)
    if count - 1 not in chosen:
        chosen.append(count - 1)
    return chosen, interval, until


def samples_markdown(samples: Sequence[Tuple[int, float, str]], every: Optional[int],
                     length: Optional[int]) -> str:
    """The report's section on samples: those :func:`shown_samples` picks, and one line
    sending the reader to ``samples.md`` for the others."""
    from charrnn.plugins.sampler import SAMPLES_FILE, fenced

    if not samples:
        return "No samples were taken.\n"
    out = [f"{length or len(samples[0][2])} characters each"
           + (f", every {every:,} updates" if every else "")
           + ", from the hidden state training had reached at that update.\n"]
    updates = [int(u) for u, _, _ in samples]
    chosen, interval, until = shown_samples(updates)
    if interval is not None:
        upto = f" up to {until:,}" if updates[-1] > until else ""
        course = ", as the assignment asks," if interval == COURSE_EVERY else ""
        line = (f"Shown here: the samples at update 0 and every {interval:,} updates{upto}"
                f"{course} and the last one (update {updates[-1]:,}).")
        if any(updates[i] % interval for i in chosen[:-1]):
            line += (f" Where no sample was taken at a multiple of {interval:,}, the first one "
                     "taken after it is shown"
                     + (f" (`--sample-every {every:,}` does not divide {interval:,})"
                        if every and interval % every else "") + ".")
        rest = len(samples) - len(chosen)
        line += (f" The other {rest:,} are in [{SAMPLES_FILE}]({SAMPLES_FILE}), which holds "
                 "every sample of the run.")
        out.append(line + "\n")
    for i in chosen:
        update, smooth, text = samples[i]
        out.append(f"### Update {int(update):,} (smooth loss {float(smooth):.3f})\n")
        out.append(fenced(text) + "\n")
    return "\n".join(out)


def _find(trainer, name: str) -> Optional[Callback]:
    for cb in trainer.callbacks:
        if getattr(cb, "name", None) == name:
            return cb
    return None


class Report(Callback):
    name = "report"
    order = Order.REPORT

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

    def options_table(self, trainer) -> str:
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
        return _table(rows, ("option", "value"))

    def render(self, trainer) -> str:
        from charrnn.plugins.sampler import fenced

        run_dir = trainer.run_dir
        ckpt, why_none = self.best_checkpoint(trainer)
        out: List[str] = []
        name = os.path.basename(os.path.normpath(run_dir))
        out.append(f"# Character-level {trainer.model.name}: run `{name}`\n")
        out.append(f"Written by charrnn {__version__} on {time.strftime('%Y-%m-%d %H:%M:%S')} "
                   f"in `{run_dir}`. A character-level {trainer.model.name} model trained with "
                   "back-propagation through time on sequences of characters.\n")

        out.append("## Configuration\n")
        out.append(_table(self.configuration(trainer, ckpt), ("setting", "value")) + "\n")
        out.append("Every option of the run is listed at the end, under *All options*.\n")

        out.append("## Gradient check\n")
        result = trainer.logs.get("gradcheck")
        if result is None:
            out.append("The gradient check was not run for this run.\n")
        else:
            out.append(_gradcheck_markdown(result) + "\n")

        out.append("## Smooth loss\n")
        if os.path.exists(os.path.join(run_dir, "loss.png")):
            out.append("![smooth loss](loss.png)\n")
        else:
            out.append("No loss plot was drawn (`loss.png` is absent; see `--plot`).\n")
        if os.path.exists(os.path.join(run_dir, "metrics.csv")):
            out.append("The numbers behind it are in [metrics.csv](metrics.csv).\n")

        out.append("## Samples during training\n")
        sampler = _find(trainer, "sampler")
        out.append(samples_markdown(list(getattr(sampler, "samples", None) or []),
                                    getattr(sampler, "every", None),
                                    getattr(sampler, "length", None)))

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
        out.append(self.options_table(trainer) + "\n")
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
    @cli.command("report")
    @click.argument("run_dir", metavar="RUN_DIR")
    @click.option("--quiet", is_flag=True,
                  help="Print only the path of report.md, for scripts.")
    def report_cmd(run_dir: str, quiet: bool) -> None:
        """Write RUN_DIR's report.md and loss.png again from its latest checkpoint, without
        training: for a run stopped before it wrote them (killed, out of disk), or to render
        an old run with this version."""
        from charrnn.resume import write_end_files

        trainer = write_end_files(run_dir, quiet=quiet)
        if quiet:
            click.echo(os.path.join(run_dir, REPORT_FILE))
        else:
            click.echo(f"run {run_dir} at update {trainer.update:,}: report and plot written")
