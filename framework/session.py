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
from .checkpoint import load_checkpoint
from .data import load_corpus
from .errors import BackendUnavailable, CharrnnError
from .model import RNN
from .registry import get_registry
from .trainer import DIVERGED, INTERRUPTED, Trainer

#: Options that fix the model's shape or its data; a resumed run may not change them.
FIXED_ON_RESUME = ("data", "encoding", "hidden", "seq_length", "val_frac", "sigma", "seed")
#: Options that describe where and how this process runs rather than the run itself.
NOT_SAVED = ("out", "resume", "quiet")


def make_backend(name: str, dtype: str):
    registry = get_registry()
    if name not in registry.names("backend"):
        available = ", ".join(registry.names("backend")) or "none"
        raise CharrnnError(f"unknown backend {name!r}; available: {available}")
    cls = registry.get("backend", name)
    try:
        return cls(dtype=dtype)
    except BackendUnavailable as exc:
        raise CharrnnError(str(exc)) from None


def make_optimizer(name: str, backend, size: int, eta: float):
    registry = get_registry()
    if name not in registry.names("optimizer"):
        available = ", ".join(registry.names("optimizer")) or "none"
        raise CharrnnError(f"unknown optimizer {name!r}; available: {available}")
    return registry.get("optimizer", name)(backend, size, eta)


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
                           f"validation characters; each needs at least {seq_length + 1}. Use a "
                           "longer text or another --val-frac")
    return ids[: len(ids) - n_val], ids[len(ids) - n_val :]


def build_trainer(options: Mapping[str, Any], run_dir: Optional[str] = None,
                  vocab: Optional[Sequence[str]] = None) -> Trainer:
    """A ready-to-fit trainer for ``options`` (the ``charrnn run`` option names)."""
    backend = make_backend(options["backend"], options["dtype"])
    corpus = load_corpus(options.get("data"), options.get("encoding") or "utf-8",
                         options["seq_length"], chars=list(vocab) if vocab is not None else None)
    model = RNN(backend, corpus.vocab_size, options["hidden"], sigma=options["sigma"],
                seed=options["seed"])
    optimizer = make_optimizer(options["optimizer"], backend, model.size, options["eta"])
    train, val = split_ids(corpus.ids, options.get("val_frac") or 0.0, options["seq_length"])
    config = {k: v for k, v in options.items() if k not in NOT_SAVED and not k.startswith("_")}
    return Trainer(model, optimizer, backend.asarray(train), options["seq_length"],
                   options["iterations"], make_callbacks(options), config=config, corpus=corpus,
                   run_dir=run_dir, val_ids=None if val is None else backend.asarray(val))


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


def resume_options(options: Dict[str, Any], explicit: Iterable[str], saved: Mapping[str, Any],
                   run_dir: str, done: int) -> Dict[str, Any]:
    """The saved configuration, with what the user gave explicitly on top where that is allowed."""
    explicit = set(explicit)
    if options.get("data") is not None:
        options = {**options, "data": os.path.abspath(options["data"])}
    for key in FIXED_ON_RESUME:
        if key in explicit and key in saved and options[key] != saved[key]:
            flag = "--" + key.replace("_", "-")
            raise CharrnnError(f"the run in {run_dir} was trained with {flag} {saved[key]}, not "
                               f"{options[key]}; drop {flag} to resume it, or start a new run")
    merged = dict(options)
    for key, value in saved.items():
        if key not in explicit and key not in NOT_SAVED:
            merged[key] = value
    if merged["iterations"] <= done:
        raise CharrnnError(f"the run in {run_dir} has already done {done} updates; pass "
                           f"--iterations larger than {done} to train further")
    return merged


def start_run(options: Dict[str, Any], explicit: Iterable[str] = ()) -> Trainer:
    resume = options.get("resume")
    if resume:
        if options.get("out") and os.path.abspath(options["out"]) != os.path.abspath(resume):
            raise CharrnnError("--resume continues a run in its own directory; drop --out")
        if not os.path.isdir(resume):
            raise CharrnnError(f"--resume {resume} is not a run directory; pass the --out "
                               "directory of an earlier run")
        ckpt = load_checkpoint(os.path.join(resume, "latest.npz"))
        options = resume_options(options, explicit, ckpt.config, resume, int(ckpt.meta["update"]))
        trainer = build_trainer(options, vocab=ckpt.vocab)
        trainer.restore(ckpt)
        check_writable(resume)
        run_dir = trainer.run_dir = resume
    else:
        run_dir = options.get("out") or default_run_dir()
        if options.get("data") is not None:
            # Saved as an absolute path, so that --resume reads the same file from anywhere.
            options = {**options, "data": os.path.abspath(options["data"])}
        trainer = build_trainer(options)  # validate everything before touching the disk
        trainer.run_dir = prepare_run_dir(run_dir)
    with open(os.path.join(run_dir, "config.json"), "w", encoding="utf-8") as fh:
        json.dump({**trainer.config, "charrnn_version": __version__,
                   "vocab_size": trainer.model.K}, fh, indent=2)
    corpus, be = trainer.corpus, trainer.backend
    click.echo(f"charrnn {__version__}: {corpus.source}, {len(corpus.text):,} characters, "
               f"{corpus.vocab_size} distinct")
    click.echo(f"backend {be.describe()}, {be.dtype.name}; optimizer {options['optimizer']} "
               f"(eta {options['eta']}); hidden {options['hidden']}, sequence "
               f"{options['seq_length']}; {options['iterations']:,} updates")
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
    click.echo(f"{status}: {done:,} updates in {elapsed:.1f} s ({done / max(elapsed, 1e-9):,.0f} "
               f"updates/s), smooth loss {trainer.smooth_loss_value():.3f}; run directory {run_dir}")
    if trainer.stop_reason == INTERRUPTED:
        click.echo(f"continue with: charrnn run --resume {run_dir}", err=True)
        raise SystemExit(130)
    if trainer.stop_reason and trainer.stop_reason.startswith(DIVERGED):
        kept = (f" (latest.npz in {run_dir} keeps the last finite state)"
                if os.path.exists(os.path.join(run_dir, "latest.npz")) else "")
        raise CharrnnError(f"{trainer.stop_reason}; lower --eta or --sigma and start again{kept}")
    return trainer
