"""Building a run's pieces from its configuration: backend, corpus, model, optimizer, callbacks,
and the trainer that holds them.

:func:`build_trainer` is the one place a trainer is assembled: ``charrnn.train``, the command line,
the tests and the benchmarks all build theirs through it.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import numpy

from .checkpoint import Checkpoint
from .run_config import RunConfig
from .data import load_corpus
from .errors import BackendUnavailable, CharrnnError
from .memory import check_memory
from .model import shape_options
from .registry import get_registry
from .run_options import CORE_OPTIONS, DEFAULT_ITERATIONS
from .stream import TextStream
from .trainer import Trainer


def lookup(kind: str, name: str) -> Any:
    registry = get_registry()
    if name not in registry.names(kind):
        available = ", ".join(registry.names(kind)) or "none"
        raise CharrnnError(f"unknown {kind} {name!r}; available: {available}")
    return registry.get(kind, name)


def make_backend(name: str, dtype: str):
    cls = lookup("backend", name)
    try:
        return cls(dtype=dtype)
    except BackendUnavailable as exc:
        raise CharrnnError(str(exc)) from None


#: What a model is built with when an option is not given (a checkpoint's model options, a test's
#: partial mapping): the run schema's defaults.
MODEL_DEFAULTS = {o.name: o.default for o in CORE_OPTIONS
                  if o.name in ("hidden", "layers", "dropout", "seed", "embedding")}


def make_model(name: str, backend, vocab_size: int, options: Mapping[str, Any],
               params: Optional[Dict[str, Any]] = None, origin: str = ""):
    """The registered model ``name`` for ``options`` (``hidden``, ``layers``, ``dropout``,
    ``sigma``, ``seed``), from ``params`` when given (a checkpoint's, from ``origin``)."""
    cls = lookup("model", name)
    if params is None:
        check_memory(cls, backend, vocab_size, options)
    try:
        given = {**MODEL_DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
        # ``embedding`` only when set: a model written before the option need not take it.
        return cls(backend, vocab_size, hidden=int(given["hidden"]), layers=int(given["layers"]),
                   dropout=float(given["dropout"]), sigma=options.get("sigma"),
                   seed=int(given["seed"]), params=params,
                   **shape_options({"embedding": given.get("embedding")}))
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
    return lookup("optimizer", name)(backend, size, eta=eta, clip=clip)


def make_callbacks(options: Mapping[str, Any]) -> list:
    registry = get_registry()
    callbacks = []
    for cls in registry.callbacks():
        cb = cls.from_options(options)
        if cb is not None:
            # So that a failure names the package to blame (see Trainer.fit).
            cb.origin = registry.origin("callback", cls.name)
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
        out["eta"] = lookup("optimizer", out["optimizer"]).default_eta
    if out.get("sigma") is None:
        out["sigma"] = lookup("model", out.get("model") or "rnn").default_sigma
    if out.get("iterations") is None and not out.get("time_limit"):
        out["iterations"] = DEFAULT_ITERATIONS
    return out


def build_trainer(config: Mapping[str, Any], run_dir: Optional[str] = None,
                  vocab: Optional[Sequence[str]] = None, *, corpus: Any = None,
                  backend: Any = None, plugins: bool = True,
                  callbacks: Sequence[Any] = ()) -> Trainer:
    """A ready-to-fit trainer for ``config``: a :class:`~charrnn.run_config.RunConfig`, or a
    mapping of ``charrnn run`` option names checked as one.

    ``vocab`` fixes the alphabet (a resumed run's); ``corpus`` gives the text already read (the
    benchmarks' own); ``backend`` a backend object already made (a test's own subclass) in place
    of the registered one ``config`` names. ``plugins`` False leaves the registered callbacks
    and the metrics log out (a bare training loop, as the benchmarks time it); ``callbacks``
    are in-process ones, run with them.
    """
    if not isinstance(config, RunConfig):
        config = RunConfig(config, _expand_preset=False)
    skip = set(config.schema.not_saved())
    options = resolve_defaults(config)
    if backend is None:
        backend = make_backend(options["backend"], options["dtype"])
    T = int(options["seq_length"])
    if corpus is None:
        corpus = load_corpus(options.get("data"), options.get("encoding") or "utf-8", T,
                             chars=list(vocab) if vocab is not None else None)
    train, val = split_ids(corpus.ids, options["val_frac"], T)
    # The stream first: its checks (a batch too large for the text) are cheaper and more
    # precise than the model's memory estimate.
    stream = TextStream(backend, train, int(options["batch_size"]), T)
    model = make_model(options["model"], backend, corpus.vocab_size, options)
    optimizer = make_optimizer(options["optimizer"], backend, model.size, options["eta"],
                               float(options["clip"]))
    saved = {k: v for k, v in options.items() if k not in skip and not k.startswith("_")}
    chosen = [*(make_callbacks(options) if plugins else []), *callbacks]
    return Trainer(model, optimizer, stream, options.get("iterations"), chosen,
                   config=saved, corpus=corpus, run_dir=run_dir,
                   val_ids=None if val is None else numpy.asarray(val),
                   time_limit=options.get("time_limit") or None, seed=int(options["seed"]),
                   clip_norm=options.get("clip_norm") or None,
                   metrics_every=int(options["log_every"]) if plugins else None)
