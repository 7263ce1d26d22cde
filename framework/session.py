"""Assembling a run from options: registry lookups, corpus, model, optimizer, callbacks.

Kept apart from the Click layer so that a run can be built from Python with the same defaults.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Mapping

import click

from . import __version__
from .data import load_corpus
from .errors import BackendUnavailable, CharrnnError
from .model import RNN
from .registry import get_registry
from .trainer import Trainer

#: Options that define the model and the data stream; saved with the run.
CONFIG_KEYS = ("backend", "optimizer", "data", "encoding", "hidden", "seq_length", "eta",
               "sigma", "iterations", "seed", "dtype")


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


def build_trainer(options: Mapping[str, Any], run_dir: str = None) -> Trainer:
    """A ready-to-fit trainer for ``options`` (the ``charrnn run`` option names)."""
    backend = make_backend(options["backend"], options["dtype"])
    corpus = load_corpus(options.get("data"), options.get("encoding", "utf-8"),
                         options["seq_length"])
    model = RNN(backend, corpus.vocab_size, options["hidden"], sigma=options["sigma"],
                seed=options["seed"])
    optimizer = make_optimizer(options["optimizer"], backend, model.size, options["eta"])
    ids = backend.asarray(corpus.ids)
    config = {key: options.get(key) for key in CONFIG_KEYS}
    return Trainer(model, optimizer, ids, options["seq_length"], options["iterations"],
                   make_callbacks(options), config=config, corpus=corpus, run_dir=run_dir)


def start_run(options: Dict[str, Any]) -> Trainer:
    from .cli import default_run_dir, prepare_run_dir

    run_dir = options.get("out") or default_run_dir()
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
    click.echo(f"run directory: {run_dir}")
    t0 = time.perf_counter()
    trainer.fit()
    elapsed = time.perf_counter() - t0
    done = trainer.update - trainer.start_update
    status = f"stopped ({trainer.stop_reason})" if trainer.stop_reason else "done"
    click.echo(f"{status}: {done:,} updates in {elapsed:.1f} s ({done / max(elapsed, 1e-9):,.0f} "
               f"updates/s), smooth loss {trainer.smooth_loss_value():.3f}; run directory {run_dir}")
    return trainer
