"""Assembling a run from options: registry lookups, corpus, model, optimizer, callbacks, resume.

Kept apart from the Click layer so that a run can be built from Python with the same defaults.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

import click
import numpy

from . import __version__
from .checkpoint import Checkpoint, load_checkpoint
from .data import load_corpus
from .errors import BackendUnavailable, CharrnnError
from .registry import get_registry
from .stream import TextStream
from .trainer import DIVERGED, INTERRUPTED, TIME_LIMIT, Trainer

#: Options that fix the model's shape or its data; a resumed run may not change them.
FIXED_ON_RESUME = ("data", "encoding", "model", "hidden", "layers", "seq_length", "batch_size",
                   "val_frac", "sigma", "seed")
#: Options that describe where and how this process runs rather than the run itself.
NOT_SAVED = ("out", "resume", "quiet")
#: Updates a run does when neither ``--iterations`` nor ``--time-limit`` is given.
DEFAULT_ITERATIONS = 100_000


def _lookup(kind: str, name: str) -> Any:
    registry = get_registry()
    if name not in registry.names(kind):
        available = ", ".join(registry.names(kind)) or "none"
        raise CharrnnError(f"unknown {kind} {name!r}; available: {available}")
    return registry.get(kind, name)


def make_backend(name: str, dtype: str):
    cls = _lookup("backend", name)
    try:
        return cls(dtype=dtype)
    except BackendUnavailable as exc:
        raise CharrnnError(str(exc)) from None


def make_model(name: str, backend, vocab_size: int, options: Mapping[str, Any],
               params: Optional[Dict[str, Any]] = None, origin: str = ""):
    """The registered model ``name`` for ``options`` (``hidden``, ``layers``, ``dropout``,
    ``sigma``, ``seed``), from ``params`` when given (a checkpoint's, from ``origin``)."""
    cls = _lookup("model", name)
    try:
        return cls(backend, vocab_size, hidden=int(options.get("hidden") or 100),
                   layers=int(options.get("layers") or 1),
                   dropout=float(options.get("dropout") or 0.0), sigma=options.get("sigma"),
                   seed=int(options.get("seed") or 0), params=params)
    except (ValueError, TypeError) as exc:
        if params is None:
            raise
        raise CharrnnError(f"{origin or 'the checkpoint'} does not fit the {name} model it names "
                           f"({exc}); it is damaged or was edited") from None
    except MemoryError:
        raise CharrnnError(f"not enough memory for a {name} model with --hidden "
                           f"{options.get('hidden')} and --layers {options.get('layers')}; "
                           "pass a smaller --hidden or --layers") from None


def model_from_checkpoint(ckpt: Checkpoint, backend):
    """The model a checkpoint holds, with its parameters, on ``backend``."""
    options = {**ckpt.model_options, "dropout": 0.0}
    return make_model(ckpt.model_name, backend, len(ckpt.vocab), options, params=ckpt.params,
                      origin=ckpt.path or "the checkpoint")


def make_optimizer(name: str, backend, size: int, eta: Optional[float], clip: float = 5.0):
    return _lookup("optimizer", name)(backend, size, eta=eta, clip=clip)


def make_callbacks(options: Mapping[str, Any]) -> list:
    callbacks = []
    for cls in get_registry().callbacks():
        cb = cls.from_options(options)
        if cb is not None:
            callbacks.append(cb)
    return callbacks


def split_ids(ids, val_frac: float, seq_length: int):
    """Hold out the end of the text for validation."""
    if not val_frac:
        return ids, None
    if not 0 < val_frac < 1:
        raise CharrnnError(f"--val-frac {val_frac} is outside (0, 1); pass e.g. --val-frac 0.1")
    n_val = int(round(len(ids) * val_frac))
    if n_val < 2 or len(ids) - n_val < seq_length + 1:
        raise CharrnnError(f"--val-frac {val_frac} leaves {len(ids) - n_val} training and {n_val} "
                           f"validation characters; training needs at least {seq_length + 1} and "
                           "validation 2. Use a longer text or another --val-frac")
    return ids[: len(ids) - n_val], ids[len(ids) - n_val :]


def resolve_defaults(options: Mapping[str, Any]) -> Dict[str, Any]:
    """Options with the defaults that depend on other options filled in, so config.json says
    what the run really used: the optimizer's learning rate, the model's initial scale, and
    the number of updates (unlimited when only a time limit is given)."""
    out = dict(options)
    if out.get("eta") is None:
        out["eta"] = _lookup("optimizer", out["optimizer"]).default_eta
    if out.get("sigma") is None:
        out["sigma"] = _lookup("model", out.get("model") or "rnn").default_sigma
    if out.get("iterations") is None and not out.get("time_limit"):
        out["iterations"] = DEFAULT_ITERATIONS
    return out


def build_trainer(options: Mapping[str, Any], run_dir: Optional[str] = None,
                  vocab: Optional[Sequence[str]] = None) -> Trainer:
    """A ready-to-fit trainer for ``options`` (the ``charrnn run`` option names)."""
    options = resolve_defaults(options)
    backend = make_backend(options["backend"], options["dtype"])
    T = int(options["seq_length"])
    corpus = load_corpus(options.get("data"), options.get("encoding") or "utf-8", T,
                         chars=list(vocab) if vocab is not None else None)
    model = make_model(options.get("model") or "rnn", backend, corpus.vocab_size, options)
    optimizer = make_optimizer(options["optimizer"], backend, model.size, options["eta"],
                               float(options.get("clip", 5.0)))
    train, val = split_ids(corpus.ids, options.get("val_frac") or 0.0, T)
    stream = TextStream(backend, train, int(options.get("batch_size") or 1), T)
    config = {k: v for k, v in options.items() if k not in NOT_SAVED and not k.startswith("_")}
    return Trainer(model, optimizer, stream, options.get("iterations"), make_callbacks(options),
                   config=config, corpus=corpus, run_dir=run_dir,
                   val_ids=None if val is None else backend.asarray(val),
                   time_limit=options.get("time_limit") or None, seed=int(options.get("seed") or 0),
                   clip_norm=options.get("clip_norm") or None)


def default_run_dir() -> str:
    return os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))


def check_writable(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise CharrnnError(f"cannot write to run directory {path} ({exc.strerror}); "
                           "pass a writable --out") from None


def prepare_run_dir(path: str) -> str:
    """Create a fresh run directory; refuse one that already holds a run, so nothing is lost."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise CharrnnError(f"run directory {path} is a file; pass a directory path to --out")
    # A directory holding only the config.json of a run that stopped before its first
    # checkpoint (a failed gradient check, say) holds nothing worth keeping.
    if os.path.isdir(path) and set(os.listdir(path)) - {"config.json"}:
        raise CharrnnError(f"run directory {path} already holds files; pass a new --out, "
                           f"or continue that run with --resume {path}")
    check_writable(path)
    return path


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def resume_options(options: Dict[str, Any], explicit: Iterable[str], ckpt: Checkpoint,
                   run_dir: str) -> Dict[str, Any]:
    """The saved configuration, with what the user gave explicitly on top where that is allowed."""
    explicit = set(explicit)
    saved = ckpt.config
    done = int(ckpt.meta["update"])
    if options.get("data") is not None:
        options = {**options, "data": os.path.abspath(options["data"])}
    for key in FIXED_ON_RESUME:
        if key in explicit and key in saved and options[key] != saved[key]:
            raise CharrnnError(f"the run in {run_dir} was trained with {_flag(key)} {saved[key]}, "
                               f"not {options[key]}; drop {_flag(key)} to resume it, or start a "
                               "new run")
    merged = dict(options)
    for key, value in saved.items():
        if key not in explicit and key not in NOT_SAVED:
            merged[key] = value
    iterations = merged.get("iterations")
    if iterations is not None and iterations <= done:
        raise CharrnnError(f"the run in {run_dir} has already done {done} updates; pass "
                           f"--iterations larger than {done} to train further")
    limit, spent = merged.get("time_limit"), float(ckpt.meta.get("train_seconds") or 0.0)
    if limit and spent >= limit:
        raise CharrnnError(f"the run in {run_dir} has used its --time-limit of {limit:g} s "
                           f"({spent:.0f} s trained); pass a larger --time-limit to train further")
    return merged


def write_config(run_dir: str, trainer: Trainer) -> None:
    with open(os.path.join(run_dir, "config.json"), "w", encoding="utf-8") as fh:
        json.dump({**trainer.config, "charrnn_version": __version__,
                   "vocab_size": trainer.model.K}, fh, indent=2)


def start_run(options: Dict[str, Any], explicit: Iterable[str] = ()) -> Trainer:
    resume = options.get("resume")
    if resume:
        if options.get("out") and os.path.abspath(options["out"]) != os.path.abspath(resume):
            raise CharrnnError("--resume continues a run in its own directory; drop --out")
        if not os.path.isdir(resume):
            raise CharrnnError(f"--resume {resume} is not a run directory; pass the --out "
                               "directory of an earlier run")
        ckpt = load_checkpoint(os.path.join(resume, "latest.npz"))
        options = resume_options(options, explicit, ckpt, resume)
        trainer = build_trainer(options, vocab=ckpt.vocab)
        if trainer.model.name != ckpt.model_name:
            raise CharrnnError(f"{ckpt.path} holds a {ckpt.model_name} model, not "
                               f"{trainer.model.name}; drop --model to resume it")
        try:
            trainer.restore(ckpt)
        except (ValueError, TypeError, KeyError) as exc:
            raise CharrnnError(f"{ckpt.path} cannot be resumed ({exc}); it is damaged or was "
                               "edited") from None
        check_writable(resume)
        run_dir = trainer.run_dir = resume
    else:
        run_dir = options.get("out") or default_run_dir()
        if options.get("data") is not None:
            # Saved as an absolute path, so that --resume reads the same file from anywhere.
            options = {**options, "data": os.path.abspath(options["data"])}
        trainer = build_trainer(options)  # validate everything before touching the disk
        trainer.run_dir = prepare_run_dir(run_dir)
    write_config(run_dir, trainer)
    corpus, be, model, stream = trainer.corpus, trainer.backend, trainer.model, trainer.stream
    cfg = trainer.config
    click.echo(f"charrnn {__version__}: {corpus.source}, {corpus.length:,} characters, "
               f"{corpus.vocab_size} distinct")
    budget = [f"{trainer.iterations:,} updates" if trainer.iterations is not None else None,
              f"time limit {trainer.time_limit:g} s" if trainer.time_limit else None]
    click.echo(f"backend {be.describe()}, {be.dtype.name}; model {model.describe()}; "
               f"optimizer {trainer.optimizer.describe()}; batch {stream.batch} x sequence "
               f"{cfg['seq_length']}; {', '.join(b for b in budget if b)}")
    if resume:
        click.echo(f"resuming at update {trainer.update:,} (epoch {trainer.epoch}, "
                   f"smooth loss {trainer.smooth_loss_value():.3f})")
    click.echo(f"run directory: {run_dir}")
    t0 = time.perf_counter()
    # Overflow in a diverging run is reported once, as a divergence, not as NumPy warnings.
    with numpy.errstate(over="ignore", divide="ignore", invalid="ignore"):
        trainer.fit()
    elapsed = time.perf_counter() - t0
    done = trainer.update - trainer.start_update
    status = f"stopped ({trainer.stop_reason})" if trainer.stop_reason else "done"
    chars = done * stream.batch * stream.seq_length
    click.echo(f"{status}: {done:,} updates in {elapsed:.1f} s ({done / max(elapsed, 1e-9):,.0f} "
               f"updates/s, {chars / max(elapsed, 1e-9):,.0f} chars/s), smooth loss "
               f"{trainer.smooth_loss_value():.3f}; run directory {run_dir}")
    if trainer.stop_reason == INTERRUPTED:
        click.echo(f"continue with: charrnn run --resume {run_dir}", err=True)
        raise SystemExit(130)
    if trainer.stop_reason and trainer.stop_reason.startswith(TIME_LIMIT):
        click.echo(f"continue with: charrnn run --resume {run_dir} --time-limit SECONDS "
                   "(a larger total)")
    if trainer.stop_reason and trainer.stop_reason.startswith(DIVERGED):
        kept = (f" (latest.npz in {run_dir} keeps the last finite state)"
                if os.path.exists(os.path.join(run_dir, "latest.npz")) else "")
        raise CharrnnError(f"{trainer.stop_reason}; lower --eta or --sigma and start again{kept}")
    return trainer
