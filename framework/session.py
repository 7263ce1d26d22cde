"""Assembling a run from options: registry lookups, corpus, model, optimizer, callbacks, resume.

Kept apart from the Click layer so that a run can be built from Python with the same defaults.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import click
import numpy

from . import __version__
from .checkpoint import Checkpoint, load_checkpoint, validate_against_model
from .data import load_corpus
from .errors import BackendUnavailable, CharrnnError
from .dirlock import LOCK_NAME, DirectoryLock
from .files import TEMPORARY_NAME, atomic_write_text
from .interrupts import deferred_interrupt
from .registry import get_registry
from .stream import TextStream
from .trainer import DIVERGED, INTERRUPTED, TIME_LIMIT, Trainer

#: Options that fix the model's shape, its data or a random stream whose state the checkpoint
#: holds; a resumed run may not change them. (Plugins mark theirs with ``fixed_on_resume=True``.)
#: Every other option given with ``--resume`` is applied, and the start-up line says so.
FIXED_ON_RESUME = ("data", "encoding", "model", "hidden", "layers", "seq_length", "batch_size",
                   "val_frac", "sigma", "seed", "optimizer")
#: Files a run writes in its directory. A directory holding only these and no checkpoint is
#: what a run killed before its first checkpoint leaves: a new run may start over in it.
RUN_FILES = ("config.json", "metrics.csv", "samples.md", "loss.png", "report.md", "latest.npz",
             "best.npz")

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
    if params is None:
        check_memory(cls, backend, vocab_size, options)
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


def available_memory() -> Optional[int]:
    """Bytes this process can still allocate without swapping (Linux's MemAvailable), or None
    where that is not known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_estimate(cls: Any, backend: Any, vocab_size: int, options: Mapping[str, Any]) -> int:
    """Bytes a run of model ``cls`` needs, roughly: its parameters kept as float64 on the host
    while they are initialised, parameters, gradients and up to two optimizer slots in the
    run's dtype, and the activations of one update (several arrays per step and layer)."""
    hidden, layers = int(options.get("hidden") or 100), int(options.get("layers") or 1)
    item = int(getattr(backend.dtype, "itemsize", 8))
    # A lower bound first (one hidden-by-hidden matrix a layer), so that an absurd size is
    # refused without building its parameter table.
    floor = hidden * hidden * layers * (8 + 4 * item)
    if floor > (available_memory() or floor + 1):
        return floor
    shapes = cls.param_shapes(int(vocab_size), hidden=hidden, layers=layers)
    count = sum(math.prod(shape) for shape in shapes.values())
    steps = int(options.get("seq_length") or 25) * int(options.get("batch_size") or 1)
    activations = steps * (int(vocab_size) * 3 + hidden * layers * 12) * item
    return count * 8 + count * item * 4 + activations


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def check_memory(cls: Any, backend: Any, vocab_size: int, options: Mapping[str, Any]) -> None:
    """Refuse a model that cannot fit before allocating it, with the estimate."""
    try:
        need = memory_estimate(cls, backend, vocab_size, options)
    except Exception:  # a plugin model without param_shapes: it is allocated and may fail then
        return
    have = available_memory()
    if have is not None and need > have:
        raise CharrnnError(
            f"this model needs about {_size(need)} (--hidden {options.get('hidden')}, --layers "
            f"{options.get('layers')}, --batch-size {options.get('batch_size')}, --seq-length "
            f"{options.get('seq_length')}) but {_size(have)} of memory is available; pass a "
            "smaller --hidden, --layers or --batch-size")


def model_from_checkpoint(ckpt: Checkpoint, backend):
    """The model a checkpoint holds, with its parameters, on ``backend``."""
    options = {**ckpt.model_options, "dropout": 0.0}
    return make_model(ckpt.model_name, backend, len(ckpt.vocab), options, params=ckpt.params,
                      origin=ckpt.path or "the checkpoint")


def make_optimizer(name: str, backend, size: int, eta: Optional[float], clip: float = 5.0):
    return _lookup("optimizer", name)(backend, size, eta=eta, clip=clip)


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
    train, val = split_ids(corpus.ids, options.get("val_frac") or 0.0, T)
    # The stream first: its checks (a batch too large for the text) are cheaper and more
    # precise than the model's memory estimate.
    stream = TextStream(backend, train, int(options.get("batch_size") or 1), T)
    model = make_model(options.get("model") or "rnn", backend, corpus.vocab_size, options)
    optimizer = make_optimizer(options["optimizer"], backend, model.size, options["eta"],
                               float(options.get("clip", 5.0)))
    config = {k: v for k, v in options.items() if k not in NOT_SAVED and not k.startswith("_")}
    return Trainer(model, optimizer, stream, options.get("iterations"), make_callbacks(options),
                   config=config, corpus=corpus, run_dir=run_dir,
                   val_ids=None if val is None else numpy.asarray(val),
                   time_limit=options.get("time_limit") or None, seed=int(options.get("seed") or 0),
                   clip_norm=options.get("clip_norm") or None)


def fixed_on_resume() -> Tuple[str, ...]:
    """The core's fixed options and those plugins declared with ``fixed_on_resume=True``."""
    extra = [o.name for o in get_registry().run_options if getattr(o, "fixed_on_resume", False)]
    return FIXED_ON_RESUME + tuple(extra)


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


def temporary_files(path: str) -> List[str]:
    """Temporary files in ``path`` left by writers that are no longer running (a kill mid-save)."""
    found = []
    try:
        names = os.listdir(path)
    except OSError:
        return []
    for name in names:
        match = TEMPORARY_NAME.match(name)
        if match is None:
            continue
        pid = int(match.group("pid"))
        try:
            if pid != os.getpid():
                os.kill(pid, 0)
                continue  # its writer still runs (another process's save in progress)
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError, OSError):
            continue
        found.append(os.path.join(path, name))
    return found


def remove_temporary_files(path: str) -> None:
    for tmp in temporary_files(path):
        try:
            os.remove(tmp)
        except OSError:
            pass


def restartable(path: str) -> bool:
    """Whether ``path`` holds only what a run killed before its first checkpoint leaves behind
    (and no checkpoint): nothing a new run in it would lose."""
    names = set(os.listdir(path))
    stale = {os.path.basename(t) for t in temporary_files(path)}
    leftover = names - stale - set(RUN_FILES) - {LOCK_NAME}
    return not leftover and not names & {"latest.npz", "best.npz"}


def prepare_run_dir(path: str) -> str:
    """A run directory for a new run (see :func:`replaces_earlier_start`).

    A directory that holds a run (a checkpoint, or files charrnn did not write) is refused, so
    nothing is lost. One that holds only what a run stopped before its first checkpoint wrote
    (a kill, a failed gradient check) is taken over: there is nothing in it to resume.
    """
    if not path.strip():
        raise CharrnnError("--out is empty; pass a directory path, or leave --out out for "
                           "runs/<date>-<time>")
    if os.path.exists(path) and not os.path.isdir(path):
        raise CharrnnError(f"run directory {path} is a file; pass a directory path to --out")
    if replaces_earlier_start(path) is None:
        if {"latest.npz", "best.npz"} & set(os.listdir(path)):
            raise CharrnnError(f"run directory {path} already holds a run; continue it with "
                               f"--resume {path}, or pass a new --out")
        raise CharrnnError(f"run directory {path} already holds other files; pass a new --out")
    check_writable(path)
    return path


def replaces_earlier_start(path: str) -> Optional[bool]:
    """For a new run in ``path``: False when it is new or empty, True when it holds only what
    an earlier start that never reached a checkpoint left, None when it holds a run or files
    charrnn did not write."""
    if not os.path.isdir(path) or not set(os.listdir(path)) - {LOCK_NAME}:
        return False
    return True if restartable(path) else None


def clear_run_files(path: str) -> None:
    """Remove what a start that never reached a checkpoint left in ``path``."""
    remove_temporary_files(path)
    for name in RUN_FILES:
        target = os.path.join(path, name)
        if os.path.isfile(target):
            os.remove(target)


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def check_saved_options(saved: Mapping[str, Any], origin: str) -> None:
    """Refuse a saved configuration (a checkpoint's, reused by a resume) holding a value the
    command line would refuse: the file was edited or damaged, and the value would reach the
    run unchecked otherwise."""
    from .cli import run

    params = {p.name: p for p in run.get_params(click.Context(run)) if p.name}
    for key, value in saved.items():
        param = params.get(key)
        if param is None or value is None or key in NOT_SAVED or param.multiple:
            continue
        try:
            param.type.convert(value, param, None)
        except (click.BadParameter, click.UsageError) as exc:
            raise CharrnnError(f"{origin}: its saved option {_flag(key)} is {value!r} "
                               f"({' '.join(exc.format_message().split())}); the file is "
                               "damaged or was edited") from None
        except Exception:
            raise CharrnnError(f"{origin}: its saved option {_flag(key)} is {value!r}, which "
                               "is not a value of that option; the file is damaged or was "
                               "edited") from None


def resume_options(options: Dict[str, Any], explicit: Iterable[str], ckpt: Checkpoint,
                   run_dir: str, finishing: bool = False) -> Dict[str, Any]:
    """The saved configuration, with what the user gave explicitly on top where that is allowed."""
    explicit = set(explicit)
    saved = ckpt.config
    done = int(ckpt.meta["update"])
    if options.get("data") is not None:
        options = {**options, "data": os.path.realpath(options["data"])}
    for key in fixed_on_resume():
        if key in explicit and key in saved and options.get(key) != saved[key]:
            raise CharrnnError(f"the run in {run_dir} was trained with {_flag(key)} {saved[key]}, "
                               f"not {options[key]}; drop {_flag(key)} to resume it, or start a "
                               "new run")
    check_saved_options(saved, ckpt.path or run_dir)
    merged = dict(options)
    for key, value in saved.items():
        if key not in explicit and key not in NOT_SAVED:
            merged[key] = value
    iterations = merged.get("iterations")
    limit, spent = merged.get("time_limit"), float(ckpt.meta.get("train_seconds") or 0.0)
    # A finished run whose report was never written (killed after its last checkpoint) is
    # finished now: zero updates, then the end-of-run files. Otherwise more budget is needed.
    asked_more = bool({"iterations", "time_limit"} & explicit)
    if finishing or (not asked_more and not report_is_current(run_dir, saved)):
        return merged
    if iterations is not None and iterations <= done:
        raise CharrnnError(f"the run in {run_dir} has already done {done} updates; pass "
                           f"--iterations larger than {done} to train further")
    if limit and spent >= limit:
        raise CharrnnError(f"the run in {run_dir} has used its --time-limit of {limit:g} s "
                           f"({spent:.0f} s trained); pass a larger --time-limit to train further")
    return merged


def report_is_current(run_dir: str, config: Mapping[str, Any]) -> bool:
    """Whether the run's report was written after its latest checkpoint. A run that writes no
    report (``--no-report``, or no report plugin installed) has nothing missing."""
    report, latest = os.path.join(run_dir, "report.md"), os.path.join(run_dir, "latest.npz")
    if config.get("report") is False or "report" not in get_registry().names("callback"):
        return True
    try:
        return os.path.getmtime(report) >= os.path.getmtime(latest)
    except OSError:
        return False


def applied_changes(saved: Mapping[str, Any], used: Mapping[str, Any],
                    explicit: Iterable[str]) -> List[str]:
    """``--name value (was old)`` for each option a resume changes."""
    out = []
    for key in sorted(set(explicit)):
        if key in NOT_SAVED or key.startswith("_") or key not in used:
            continue
        if key in saved and saved[key] != used[key]:
            out.append(f"{_flag(key)} {used[key]} (was {saved[key]})")
        elif key not in saved:
            out.append(f"{_flag(key)} {used[key]}")
    return out


def write_config(run_dir: str, trainer: Trainer) -> None:
    atomic_write_text(os.path.join(run_dir, "config.json"),
                      json.dumps({**trainer.config, "charrnn_version": __version__,
                                  "vocab_size": trainer.model.K, "run_id": trainer.run_id},
                                 indent=2))


def check_same_run(run_dir: str, ckpt: Checkpoint) -> None:
    """Refuse a checkpoint that belongs to another run than the one in ``run_dir`` (copied in
    from elsewhere): resuming it would rewrite this run's config.json and drop its metrics.
    Runs and checkpoints older than run ids pass."""
    try:
        with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as fh:
            ours = json.load(fh).get("run_id")
    except (OSError, ValueError, AttributeError):
        return  # no readable config.json: nothing to compare with
    theirs = ckpt.meta.get("run_id")
    if ours and theirs and ours != theirs:
        raise CharrnnError(f"{ckpt.path} belongs to another run (run id {theirs}) than the one "
                           f"in {run_dir} (run id {ours}); put back this run's own checkpoint, "
                           "or resume that run in its own directory")


def open_run(run_dir: str, options: Dict[str, Any], explicit: Iterable[str] = (),
             finishing: bool = False) -> Tuple[Trainer, Checkpoint]:
    """The trainer of the run in ``run_dir``, restored from its latest checkpoint, with the
    explicitly given ``options`` applied (or refused). Writes nothing. ``finishing``: only its
    end-of-run files are wanted, so a spent budget is no reason to refuse."""
    if not os.path.isdir(run_dir):
        raise CharrnnError(f"{run_dir} is not a run directory; pass the --out directory of an "
                           "earlier run")
    latest = os.path.join(run_dir, "latest.npz")
    if not os.path.exists(latest):
        if os.path.exists(os.path.join(run_dir, "best.npz")):
            raise CharrnnError(f"{run_dir} holds best.npz but no latest.npz to continue from; "
                               "copy best.npz to latest.npz to continue from the best state")
        raise CharrnnError(f"{run_dir} holds no checkpoint (latest.npz): its run stopped before "
                           f"the first one, so there is nothing to continue; start it again "
                           f"with --out {run_dir}")
    ckpt = load_checkpoint(latest)
    check_same_run(run_dir, ckpt)
    merged = resume_options(options, explicit, ckpt, run_dir, finishing)
    trainer = build_trainer(merged, vocab=ckpt.vocab)
    if trainer.model.name != ckpt.model_name:
        raise CharrnnError(f"{ckpt.path} holds a {ckpt.model_name} model, not "
                           f"{trainer.model.name}; drop --model to resume it")
    validate_against_model(ckpt, trainer.model, batch=trainer.stream.batch)
    position = ckpt.meta.get("position")
    if isinstance(position, int) and position > trainer.stream.length:
        source = merged.get("data") or "the embedded corpus"
        raise CharrnnError(f"the text {source} is shorter than when the run in {run_dir} was "
                           f"trained: its checkpoint reads at character {position:,} of a stripe "
                           f"that now has {trainer.stream.length:,}; put back the text the run "
                           "was trained on, or start a new run")
    try:
        trainer.restore(ckpt)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise CharrnnError(f"{ckpt.path} cannot be resumed ({exc}); it is damaged or was "
                           "edited") from None
    # The learning rate the run goes on with is the one configured now (a schedule then
    # scales it again before the first update), not the one the optimizer saved.
    trainer.optimizer.eta = float(merged["eta"])
    return trainer, ckpt


def write_end_files(run_dir: str, quiet: bool = False) -> Trainer:
    """``charrnn report``: the end-of-run files (report, plot, metrics) of the run in
    ``run_dir`` written again from its latest checkpoint, without training."""
    if not os.path.isdir(run_dir):
        open_run(run_dir, {"resume": run_dir, "quiet": quiet}, finishing=True)  # its refusal
    with DirectoryLock(run_dir) as lock:
        try:
            trainer, _ = open_run(run_dir, {"resume": run_dir, "quiet": quiet}, finishing=True)
        except BaseException:
            lock.release(remove=True)
            raise
        lock.claim()
        trainer.run_dir = run_dir
        remove_temporary_files(run_dir)
        if not trainer.finished():
            trainer.stop("not finished; written by charrnn report from latest.npz without "
                         "training")
        with numpy.errstate(over="ignore", divide="ignore", invalid="ignore"):
            trainer.fit()
    return trainer


def check_names(options: Mapping[str, Any]) -> None:
    """Refuse, before anything is read or written, a path or name given empty (it would
    otherwise mean the default: an empty --resume started a new run) or, for the directories a
    run writes, one that is not valid UTF-8 (its report, written in UTF-8, names it)."""
    for key, what in (("resume", "the directory of the run to continue"),
                      ("data", "a text file"), ("encoding", "a codec name such as utf-8"),
                      ("out", "a directory path, or leave --out out for runs/<date>-<time>")):
        value = options.get(key)
        if value is None:
            continue
        if not str(value).strip():
            raise CharrnnError(f"{_flag(key)} is empty; pass {what}")
        if key in ("resume", "out"):
            try:
                str(value).encode("utf-8")
            except UnicodeEncodeError:
                raise CharrnnError(f"{_flag(key)} {value!r} is not valid UTF-8; pass a directory "
                                   "name that is") from None


def start_run(options: Dict[str, Any], explicit: Iterable[str] = ()) -> Trainer:
    check_names(options)
    resume = options.get("resume")
    explicit = list(explicit)
    changes: List[str] = []
    if resume:
        if options.get("out") and os.path.abspath(options["out"]) != os.path.abspath(resume):
            raise CharrnnError("--resume continues a run in its own directory; drop --out")
        if not os.path.isdir(resume):
            raise CharrnnError(f"--resume {resume} is not a run directory; pass the --out "
                               "directory of an earlier run")
        # Locked before anything is read: nobody else changes the run while it is checked.
        lock = DirectoryLock(resume).acquire()
        try:
            trainer, ckpt = open_run(resume, options, explicit)
            check_writable(resume)
        except BaseException:
            lock.release(remove=True)
            raise
        changes = applied_changes(ckpt.config, trainer.config, explicit)
        run_dir = trainer.run_dir = resume
        remove_temporary_files(run_dir)  # everything checked: now the directory may change
    else:
        run_dir = options.get("out")
        if run_dir is None:
            run_dir = default_run_dir()
        if options.get("data") is not None:
            # Saved resolved as the OS resolves it (symbolic links, then ..), so that --resume
            # reads the same file from anywhere.
            options = {**options, "data": os.path.realpath(options["data"])}
        if isinstance(run_dir, str) and not run_dir.strip():
            prepare_run_dir(run_dir)  # refuses an empty --out before the corpus is read
        trainer = build_trainer(options)  # validate everything before touching the disk
        prepare_run_dir(run_dir)
        lock = DirectoryLock(run_dir).acquire()
        try:
            # Checked again under the lock: another start may have written here meanwhile.
            replacing = bool(replaces_earlier_start(run_dir))
            trainer.run_dir = prepare_run_dir(run_dir)
        except BaseException:
            lock.release(remove=True)
            raise
        if replacing:
            clear_run_files(run_dir)
            click.echo(f"starting over in {run_dir}: the run there stopped before its first "
                       "checkpoint")
    try:
        lock.claim()
        return _train(trainer, run_dir, bool(resume), changes)
    finally:
        lock.release()


def _train(trainer: Trainer, run_dir: str, resume: bool, changes: List[str]) -> Trainer:
    """The run, once its directory is locked and its trainer built: the start-up lines,
    training, the stop line."""
    with deferred_interrupt():
        write_config(run_dir, trainer)
    corpus, be, model, stream = trainer.corpus, trainer.backend, trainer.model, trainer.stream
    cfg = trainer.config
    click.echo(f"charrnn {__version__}: {corpus.source}, {corpus.length:,} characters, "
               f"{corpus.vocab_size} distinct")
    if getattr(corpus, "cache_note", None):
        click.echo(corpus.cache_note)
    budget = [f"{trainer.iterations:,} updates" if trainer.iterations is not None else None,
              f"time limit {trainer.time_limit:g} s" if trainer.time_limit else None]
    click.echo(f"backend {be.describe()}, {be.dtype.name}; model {model.describe()}; "
               f"optimizer {trainer.optimizer.describe()}; batch {stream.batch} x sequence "
               f"{cfg['seq_length']}; {', '.join(b for b in budget if b)}")
    if resume:
        click.echo(f"resuming at update {trainer.update:,} (epoch {trainer.epoch}, "
                   f"smooth loss {trainer.smooth_loss_value():.3f})"
                   + (f"; applying {', '.join(changes)}" if changes else ""))
        if trainer.finished():
            click.echo("the run has done its training; writing its end-of-run files (report, "
                       "plot) from the latest checkpoint")
    click.echo(f"run directory: {run_dir}")
    # Overflow in a diverging run is reported once, as a divergence, not as NumPy warnings.
    with numpy.errstate(over="ignore", divide="ignore", invalid="ignore"):
        trainer.fit()
    done = trainer.update - trainer.start_update
    if resume and done == 0 and trainer.stop_reason != INTERRUPTED:
        why = f": {trainer.stop_reason}" if trainer.stop_reason else ""
        click.echo(f"no updates to do{why}; run directory {run_dir}")
        return trainer
    status = f"stopped ({trainer.stop_reason})" if trainer.stop_reason else "done"
    # Speeds in training time (validation excluded); a resumed process counts its own updates
    # and says where the run stands in all.
    seconds = trainer.training_seconds()
    chars = done * stream.batch * stream.seq_length
    session = "this session: " if resume else ""
    total = f"; update {trainer.update:,} in all" if resume else ""
    click.echo(f"{status}: {session}{done:,} updates in {seconds:.1f} s of training "
               f"({done / max(seconds, 1e-9):,.0f} updates/s, {chars / max(seconds, 1e-9):,.0f} "
               f"chars/s){total}, smooth loss {trainer.smooth_loss_value():.3f}; run directory "
               f"{run_dir}")
    if trainer.stop_reason == INTERRUPTED:
        click.echo(f"continue with: charrnn run --resume {run_dir}", err=True)
        raise SystemExit(128 + int(trainer.interrupt_signal or signal.SIGINT))
    if trainer.stop_reason and trainer.stop_reason.startswith(TIME_LIMIT):
        click.echo(f"continue with: charrnn run --resume {run_dir} --time-limit SECONDS "
                   "(a larger total)")
    if trainer.stop_reason and trainer.stop_reason.startswith(DIVERGED):
        kept = (f" (latest.npz in {run_dir} keeps the last finite state)"
                if os.path.exists(os.path.join(run_dir, "latest.npz")) else "")
        raise CharrnnError(f"{trainer.stop_reason}; lower --eta or --sigma and start again{kept}")
    return trainer
