"""The resume policy: what a continued run keeps, what it may change, and when there is nothing
left to do; and ``charrnn report``'s end-of-run files written again from a checkpoint."""
from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy

from .assembly import build_trainer
from .checkpoint import Checkpoint, load_checkpoint, validate_against_model
from .config import Schema, flag_name
from .registry import run_schema
from .run_config import RunConfig
from .dirlock import DirectoryLock
from .errors import CharrnnError
from .registry import get_registry
from .rundir import check_same_run, remove_temporary_files
from .trainer import Trainer


def check_saved_options(saved: Mapping[str, Any], origin: str,
                        schema: Optional[Schema] = None) -> None:
    """Refuse a saved configuration (a checkpoint's, reused by a resume) holding a value the
    command line would refuse: the file was edited or damaged, and the value would reach the
    run unchecked otherwise. Options no plugin installed now declares pass as they are."""
    schema = schema if schema is not None else run_schema()
    for key, value in saved.items():
        if key not in schema or value is None or not schema[key].saved:
            continue
        try:
            schema.check_value(schema[key], value)
        except ValueError as exc:
            raise CharrnnError(f"{origin}: its saved option {flag_name(key)} is {value!r} "
                               f"({' '.join(str(exc).split())}); the file is damaged or was "
                               "edited") from None
        except Exception:
            raise CharrnnError(f"{origin}: its saved option {flag_name(key)} is {value!r}, "
                               "which is not a value of that option; the file is damaged or "
                               "was edited") from None


def resume_options(options: Mapping[str, Any], explicit: Iterable[str], ckpt: Checkpoint,
                   run_dir: str, finishing: bool = False) -> Dict[str, Any]:
    """The saved configuration, with what the user gave explicitly on top where that is allowed."""
    schema = options.schema if isinstance(options, RunConfig) else run_schema()
    options = dict(options)
    explicit = set(explicit)
    saved = ckpt.config
    done = int(ckpt.meta["update"])
    if options.get("data") is not None:
        options = {**options, "data": os.path.realpath(options["data"])}
    for key in schema.fixed_on_resume():
        if key in explicit and key in saved and options.get(key) != saved[key]:
            raise CharrnnError(f"the run in {run_dir} was trained with {flag_name(key)} {saved[key]}, "
                               f"not {options[key]}; drop {flag_name(key)} to resume it, or start a "
                               "new run")
    check_saved_options(saved, ckpt.path or run_dir, schema)
    not_saved = set(schema.not_saved())
    merged = dict(options)
    for key, value in saved.items():
        if key not in explicit and key not in not_saved:
            merged[key] = value
    iterations = merged.get("iterations")
    limit, spent = merged.get("time_limit"), float(ckpt.meta.get("train_seconds") or 0.0)
    # A finished run whose report was never written (killed after its last checkpoint) is
    # finished now: zero updates, then the end-of-run files. Otherwise more budget is needed.
    asked_more = bool({"iterations", "time_limit"} & explicit)
    if finishing or (not asked_more and not end_files_current(run_dir, saved)):
        return merged
    if iterations is not None and iterations <= done:
        raise CharrnnError(f"the run in {run_dir} has already done {done} updates; pass "
                           f"--iterations larger than {done} to train further")
    if limit and spent >= limit:
        raise CharrnnError(f"the run in {run_dir} has used its --time-limit of {limit:g} s "
                           f"({spent:.0f} s trained); pass a larger --time-limit to train further")
    return merged


def end_files_current(run_dir: str, config: Mapping[str, Any]) -> bool:
    """Whether every registered callback's end-of-run files reflect the run's latest checkpoint
    (:meth:`charrnn.Callback.files_current`): the report's, for one."""
    return all(cls.files_current(run_dir, config) for cls in get_registry().callbacks())


def applied_changes(saved: Mapping[str, Any], used: Mapping[str, Any],
                    explicit: Iterable[str]) -> List[str]:
    """``--name value (was old)`` for each option a resume changes."""
    out = []
    for key in sorted(set(explicit)):
        if key.startswith("_") or key not in used:
            continue
        if key in saved and saved[key] != used[key]:
            out.append(f"{flag_name(key)} {used[key]} (was {saved[key]})")
        elif key not in saved:
            out.append(f"{flag_name(key)} {used[key]}")
    return out


def open_run(run_dir: str, options: Mapping[str, Any], explicit: Iterable[str] = (),
             finishing: bool = False, callbacks: Sequence[Any] = ()) -> Tuple[Trainer, Checkpoint]:
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
    if not isinstance(options, RunConfig):
        options = RunConfig(options, _expand_preset=False)
    merged = resume_options(options, explicit, ckpt, run_dir, finishing)
    config = RunConfig(merged, schema=options.schema, explicit=explicit, _expand_preset=False,
                       _keep_unknown=True)
    trainer = build_trainer(config, vocab=ckpt.vocab, callbacks=callbacks)
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
    trainer.optimizer.eta = float(trainer.config["eta"])
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
