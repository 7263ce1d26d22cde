"""``charrnn sweep``: a hyperparameter search, with Optuna choosing and Dask running the trials.

The sweep is a plugin like any other: it adds its command through ``register_commands``, and
its heavy dependencies (Optuna, Dask, the Optuna-Dask storage) are imported only when the command
runs, so that charrnn without the ``sweep`` extra still starts at once and says in one line what
to install.

How the pieces fit:

* **The study** lives in Optuna's storage: ``study.db`` (SQLite) in the sweep directory, or any
  ``--storage`` URL. It is wrapped in ``optuna_integration.DaskStorage``, which keeps it on the
  Dask scheduler, so workers on other machines report to it through the scheduler rather than
  opening the database themselves.
* **The trials** are asked of the study here (Optuna's default sampler chooses the values), run
  by Dask workers as ordinary ``charrnn run`` processes (:mod:`charrnn.plugins.sweep.trial`), and
  told back here. Their validation losses are reported as they train, and a median pruner stops
  the hopeless ones.
* **The cluster** is a ``distributed.LocalCluster`` with one single-threaded worker process per
  core, or the cluster at ``--scheduler``. A worker that dies costs at most its trial: Dask runs
  the task again once (it resumes the trial's run directory), then the trial is marked failed.
* **Resuming.** The same command again opens the same study: finished trials are kept, and a
  trial the interruption caught is run again, resuming its run directory.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import time
from typing import Any, Dict, List, Optional, Tuple

import click
from charrnn.dirlock import DirectoryLock
from charrnn.errors import CharrnnError
from charrnn.options import FiniteFloat

INSTALL = "pip install 'charrnn-kit[sweep]'"
STUDY = "charrnn-sweep"
DB = "study.db"
SETTINGS = "sweep.json"
DEFAULT_VAL_FRAC = 0.1
#: Seconds to wait for a --scheduler to answer.
CONNECT_TIMEOUT = 10
#: Seconds running trials get to stop and save when the sweep is interrupted.
STOP_GRACE = 30


#: What the worker processes inherit: Optuna's note that DaskStorage is experimental would
#: otherwise be printed by every worker that unpickles the storage.
QUIET_WARNINGS = "ignore:DaskStorage is experimental"


def _imports() -> Tuple[Any, Any, Any]:
    try:
        import distributed
        import optuna
        from optuna_integration.dask import DaskStorage
    except ImportError as exc:
        raise CharrnnError(f"charrnn sweep needs Optuna and Dask ({exc.name or exc} is not "
                           f"installed); install them with: {INSTALL}") from None
    import warnings

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # progress is this command's to print
    return optuna, distributed, DaskStorage


def default_sweep_dir() -> str:
    return os.path.join("sweeps", time.strftime("%Y%m%d-%H%M%S"))


def _budget(iterations: Optional[int], time_limit: Optional[float]) -> List[str]:
    argv = []
    if iterations is not None:
        argv += ["--iterations", str(iterations)]
    if time_limit is not None:
        argv += ["--time-limit", repr(float(time_limit))]
    return argv


class Sweep:
    """A sweep in progress: the study, the cluster's client, and the trials in flight."""

    def __init__(self, sweep_dir: str, settings: Dict[str, Any], space: Any, options: Any,
                 client: Any, storage_url: str, seed: Optional[int], pruner_startup: int):
        self.optuna, self.distributed, DaskStorage = _imports()
        self.sweep_dir, self.settings, self.space, self.options = (
            sweep_dir, settings, space, options)
        self.client = client
        try:
            self.storage = DaskStorage(storage=storage_url, client=client)
            self.pruner = self.optuna.pruners.MedianPruner(n_startup_trials=pruner_startup)
            self.study = self.optuna.create_study(
                study_name=STUDY, storage=self.storage, direction="minimize",
                load_if_exists=True, pruner=self.pruner)
            # Seeded past the trials already made: a resumed sweep would otherwise draw its
            # first trials' values again.
            made = len(self.study.get_trials(deepcopy=False))
            self.study.sampler = self.optuna.samplers.TPESampler(
                seed=None if seed is None else seed + made)
        except Exception as exc:
            raise CharrnnError(f"cannot open the study's storage {storage_url} "
                               f"({type(exc).__name__}: {exc}); pass a database URL such as "
                               "sqlite:///sweep.db or postgresql://host/db to --storage") from None
        self.futures: Dict[Any, Tuple[Any, str]] = {}
        # Set when this sweep stops early (Ctrl-C): running trials see it and stop their runs
        # cleanly, with a checkpoint, even on workers of a cluster that outlives the sweep.
        self.stop = self.distributed.Event(f"charrnn-sweep-stop-{os.urandom(6).hex()}",
                                           client=client)

    # -- trials ----------------------------------------------------------------------------

    def _slots(self) -> int:
        workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def _rerun_interrupted(self) -> int:
        """Trials left running by an interrupted sweep: marked as interrupted, and queued again
        with their run directory, which the new trial resumes."""
        stale = [t for t in self.study.get_trials(deepcopy=False)
                 if t.state == self.optuna.trial.TrialState.RUNNING]
        for t in stale:
            self.optuna.trial.Trial(self.study, t._trial_id).set_user_attr("interrupted", True)
            self.study.tell(t.number, state=self.optuna.trial.TrialState.FAIL)
            # A trial interrupted between Optuna's ask and its submission has no run
            # directory yet: it is queued with its parameters alone, and gets one when it runs.
            run_dir = t.user_attrs.get("run_dir")
            self.study.enqueue_trial(t.params, user_attrs={"run_dir": run_dir} if run_dir else {})
        return len(stale)

    def _submit(self) -> None:
        trial = self.study.ask()
        values = {p.name: p.suggest(trial) for p in self.space.params}
        run_dir = trial.user_attrs.get("run_dir") or os.path.join(
            self.sweep_dir, "trials", f"trial-{trial.number:04d}")
        argv = self._argv(values)
        command = "charrnn run " + " ".join(shlex.quote(a) for a in argv) + " --out runs/best"
        for key, value in (("run_dir", run_dir), ("command", command)):
            trial.set_user_attr(key, value)
        os.makedirs(os.path.join(self.sweep_dir, "logs"), exist_ok=True)
        from charrnn.plugins.sweep.trial import run_trial

        job = {"study": STUDY, "storage": self.storage, "pruner": self.pruner,
               "trial_id": trial._trial_id, "argv": argv, "run_dir": os.path.abspath(run_dir),
               "stop": self.stop.name,
               "log": os.path.abspath(os.path.join(self.sweep_dir, "logs",
                                                   f"trial-{trial.number:04d}.log"))}
        future = self.client.submit(run_trial, job, pure=False, key=f"trial-{trial.number}-"
                                    f"{os.urandom(4).hex()}")
        self.futures[future] = (trial, run_dir)

    def _argv(self, values: Dict[str, Any]) -> List[str]:
        from charrnn.plugins.sweep.space import run_argv

        chosen = {**self.space.fixed, **values}
        return run_argv(chosen, self.options) + self.settings["budget_argv"]

    def _finish(self, future: Any) -> str:
        trial, run_dir = self.futures.pop(future)
        states = self.optuna.trial.TrialState
        try:
            outcome = future.result()
        except self.distributed.KilledWorker:
            outcome = {"state": "fail", "value": None,
                       "detail": "its worker died, also when the trial was run again"}
        except Exception as exc:  # a failure inside the task, reported in one line
            outcome = {"state": "fail", "value": None,
                       "detail": f"{type(exc).__name__}: {exc}"}
        if outcome["state"] == "interrupted":  # left running: the next start runs it again
            return f"trial {trial.number} stopped by the interruption"
        if outcome.get("value") is not None:
            trial.set_user_attr("last_val_loss", outcome["value"])
        if outcome.get("detail"):
            trial.set_user_attr("detail", outcome["detail"])
        if outcome["state"] == "complete":
            self.study.tell(trial, outcome["value"])
        else:
            self.study.tell(trial, state=states.PRUNED if outcome["state"] == "pruned"
                            else states.FAIL)
        return self._progress(trial, outcome)

    def _progress(self, trial: Any, outcome: Dict[str, Any]) -> str:
        from charrnn.plugins.sweep.results import best, finished

        trials = self.study.get_trials(deepcopy=False)
        done = finished(trials)
        pruned = sum(t.state == self.optuna.trial.TrialState.PRUNED for t in done)
        top = best(trials)
        value = outcome.get("value")
        what = {"complete": f"val {value:.4f}" if value is not None else "complete",
                "pruned": "pruned" + (f" ({outcome['detail']})" if outcome.get("detail") else ""),
                "fail": f"failed: {outcome.get('detail', '')}"}[outcome["state"]]
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in trial.params.items())
        best_text = f"best {top.value:.4f} (trial {top.number})" if top else "no best yet"
        return (f"trial {trial.number} {what} [{params}]; done {len(done)}/"
                f"{self.settings['trials']}, running {len(self.futures)}, pruned {pruned}; "
                f"{best_text}")

    def run(self) -> None:
        rerun = self._rerun_interrupted()
        if rerun:
            click.echo(f"running again {rerun} trial(s) the last interruption caught")
        wanted = self.settings["trials"]
        try:
            while True:
                done = len(self._finished())
                while done + len(self.futures) < wanted and len(self.futures) < self._slots():
                    self._submit()
                if not self.futures:
                    break
                try:
                    ready, _ = self.distributed.wait(list(self.futures), timeout=1,
                                                     return_when="FIRST_COMPLETED")
                except TimeoutError:  # nothing finished this second: look again
                    continue
                for future in ready:
                    click.echo(self._finish(future))
        finally:
            if self.futures:  # stopped early: the running trials stop and save, then go
                self.stop.set()
                try:
                    self.distributed.wait(list(self.futures), timeout=STOP_GRACE)
                except TimeoutError:
                    pass
                for future in list(self.futures):
                    future.cancel()

    def _finished(self) -> List[Any]:
        from charrnn.plugins.sweep.results import finished

        return finished(self.study.get_trials(deepcopy=False))


def _connect(scheduler: Optional[str], workers: int, distributed: Any, timeout: float):
    """A client of the cluster at ``scheduler``, or of a new local cluster of ``workers``."""
    import dask

    if scheduler:
        try:
            return distributed.Client(scheduler, timeout=timeout), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise CharrnnError(f"cannot reach the Dask scheduler at {scheduler} within "
                               f"{timeout:g} s ({type(exc).__name__}); start one with "
                               "`dask scheduler` and `dask worker ADDRESS`, or check the "
                               "address") from None
    from charrnn.plugins.sweep.trial import SINGLE_THREAD

    # One retry: a trial whose worker dies runs once more (resuming), then counts as failed.
    dask.config.set({"distributed.scheduler.allowed-failures": 1})
    os.environ.update(SINGLE_THREAD)  # the worker processes inherit one BLAS thread each
    os.environ["PYTHONWARNINGS"] = QUIET_WARNINGS
    # Ctrl-C in a terminal reaches the whole process group: the workers start with it ignored
    # (they inherit that), so that this process alone handles it and stops them in order. The
    # trials' own runs take Ctrl-C back and stop cleanly, with a checkpoint to resume.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                           processes=True, dashboard_address=":0",
                                           silence_logs=50)
    finally:
        signal.signal(signal.SIGINT, previous)
    return distributed.Client(cluster), cluster


def _settings(sweep_dir: str, wanted: Dict[str, Any], write: bool = True) -> Dict[str, Any]:
    """The sweep's settings, saved on its first start; a later start must ask for the same
    search, or it would mix trials of two searches in one study. ``write=False`` only checks."""
    from charrnn.files import atomic_write_text

    path = os.path.join(sweep_dir, SETTINGS)
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
        except (OSError, ValueError) as exc:
            raise CharrnnError(f"{path} cannot be read ({exc}); pass a new --out") from None
        for key, what in (("fixed", "other --set values"), ("space", "other --param ranges"),
                          ("budget_argv", "another --iterations or --time-limit")):
            if saved.get(key) != wanted[key]:
                raise CharrnnError(f"the sweep in {sweep_dir} was started with {what}; run its "
                                   "own command again, or pass a new --out")
        saved["trials"] = wanted["trials"]  # more (or fewer) trials may be asked for
        if write:
            atomic_write_text(path, json.dumps(saved, indent=2))
        return saved
    if write:
        os.makedirs(sweep_dir, exist_ok=True)
        atomic_write_text(path, json.dumps(wanted, indent=2))
    return wanted


def _describe_space(space: Any) -> Dict[str, Any]:
    return {p.name: {"kind": p.kind, "choices": list(p.choices), "low": p.low, "high": p.high,
                     "log": p.log, "describe": p.describe()} for p in space.params}


def show(sweep_dir: str, storage_url: Optional[str], quiet: bool = False) -> None:
    """Print the table and write the plots and sweep.md from the study's trials."""
    optuna, _, _ = _imports()
    from charrnn.plugins.sweep import results

    path = os.path.join(sweep_dir, SETTINGS)
    if not os.path.exists(path):
        raise CharrnnError(f"{sweep_dir} is not a sweep directory (it has no {SETTINGS}); pass "
                           "the --out of a charrnn sweep")
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError) as exc:
        raise CharrnnError(f"{path} cannot be read ({exc}); it is damaged or was edited") \
            from None
    if not isinstance(info, dict) or not isinstance(info.get("space", {}), dict) or \
            not isinstance(info.get("storage"), (str, type(None))):
        raise CharrnnError(f"{path} is not what charrnn sweep writes (an object with its "
                           "search space and storage); it is damaged or was edited")
    url = storage_url or info.get("storage") or _default_storage(sweep_dir)
    try:
        study = optuna.load_study(study_name=STUDY, storage=url)
    except Exception as exc:
        raise CharrnnError(f"cannot open the study in {url} ({type(exc).__name__}: {exc}); "
                           "pass its --storage") from None
    trials = study.get_trials(deepcopy=False)
    rows = results.table(trials, list(info.get("space", {})))
    if not quiet:
        click.echo(results.format_table(rows))
    results.plot(trials, info.get("space", {}), sweep_dir)
    report = results.write_report(trials, info, sweep_dir)
    top = results.best(trials)
    if top is not None:
        click.echo(f"best: trial {top.number}, validation loss {top.value:.4f}; train it "
                   f"again with:\n  {top.user_attrs.get('command', '')}")
    click.echo(f"report: {report}")


def check_storage(url: str, optuna: Any) -> None:
    """Open the storage here before any cluster starts, so that a bad URL costs one line, not
    a cluster's start-up. (With --scheduler the scheduler opens it, and says so itself.)"""
    try:
        optuna.storages.get_storage(url)
    except Exception as exc:
        raise CharrnnError(f"cannot open the study's storage {url} ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}); pass a database URL such as "
                           "sqlite:///sweep.db or postgresql://host/db to --storage") from None


def _default_storage(sweep_dir: str) -> str:
    return "sqlite:///" + os.path.abspath(os.path.join(sweep_dir, DB))


def register(cli) -> None:
    @cli.command("sweep")
    @click.option("--out", default=None, metavar="DIR",
                  help="Sweep directory: the study, each trial's run directory, the report "
                       "[default: sweeps/<date>-<time>]. The same command with the same --out "
                       "resumes an interrupted sweep.")
    @click.option("--param", "params", multiple=True, metavar="NAME=SPEC",
                  help="An option to search: NAME=A,B,C (a choice), NAME=LOW:HIGH (a range; "
                       "whole numbers for an integer option) or NAME=log:LOW:HIGH. Repeatable.")
    @click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
                  help="An option fixed for every trial, e.g. --set model=lstm. Repeatable.")
    @click.option("--space", "space_file", default=None, metavar="FILE",
                  help="A file of --set and --param lines (# starts a comment), read before "
                       "those on the command line.")
    @click.option("--trials", type=click.IntRange(min=1), default=20, show_default=True,
                  help="Trials to finish (complete, pruned or failed).")
    @click.option("--iterations", type=click.IntRange(min=1), default=None,
                  help="Updates per trial (the per-trial budget, with or instead of "
                       "--time-limit).")
    @click.option("--time-limit", type=FiniteFloat(min=0, min_open=True), default=None,
                  metavar="SECONDS", help="Seconds of training per trial.")
    @click.option("--workers", type=click.IntRange(min=1), default=None,
                  help="Worker processes of the local cluster [default: one per core].")
    @click.option("--scheduler", default=None, metavar="ADDRESS",
                  help="Run the trials on the Dask cluster at ADDRESS (tcp://HOST:8786) "
                       "instead of a local one.")
    @click.option("--connect-timeout", type=FiniteFloat(min=0, min_open=True),
                  default=CONNECT_TIMEOUT, show_default=True, metavar="SECONDS",
                  help="How long to wait for --scheduler to answer.")
    @click.option("--storage", default=None, metavar="URL",
                  help="Optuna storage URL of the study [default: sqlite:///DIR/study.db].")
    @click.option("--seed", type=click.IntRange(min=0, max=2**32 - 1), default=0,
                  show_default=True, help="Seed of Optuna's sampler.")
    @click.option("--prune-after", type=click.IntRange(min=0), default=4, show_default=True,
                  help="Trials that must complete before the pruner stops any.")
    @click.option("--show", "show_dir", default=None, metavar="DIR",
                  help="Only print the table of the sweep in DIR and write its plots and "
                       "sweep.md.")
    def sweep_cmd(out, params, sets, space_file, trials, iterations, time_limit, workers,
                  scheduler, connect_timeout, storage, seed, prune_after, show_dir) -> None:
        """Search over charrnn run options for the lowest validation loss.

        Optuna chooses each trial's values, Dask runs the trials (on a local cluster with one
        worker per core, or on --scheduler), and every trial is an ordinary run directory
        under DIR/trials.
        """
        if show_dir is not None:
            show(show_dir, storage)
            return
        from charrnn.plugins.sweep.space import build_space, run_options

        options = run_options()
        if "val_every" not in options:  # the option of whatever measures validation losses
            raise CharrnnError("the sweep minimises the validation loss, and no installed "
                               "plugin measures it (charrnn run has no --val-every); enable "
                               "the validation plugin (drop --disable validation)")
        space = build_space(sets, params, space_file, options)  # checked before any import
        if iterations is None and time_limit is None:
            raise CharrnnError("each trial needs a budget; pass --iterations N or "
                               "--time-limit SECONDS")
        defaulted_val = "val_frac" not in space.fixed
        if defaulted_val:
            space.fixed["val_frac"] = DEFAULT_VAL_FRAC
        if not space.fixed["val_frac"]:
            raise CharrnnError("--set val-frac=0 leaves no validation text, and the sweep "
                               "minimises the validation loss; pass --set val-frac=0.1")
        if iterations is not None and "val_every" not in space.fixed:
            space.fixed["val_every"] = max(1, iterations // 10)
        every = space.fixed.get("val_every")
        if every is not None and "log_every" not in space.fixed:
            space.fixed["log_every"] = every  # a validation row per report to the pruner
        if "data" in space.fixed:
            space.fixed["data"] = os.path.realpath(space.fixed["data"])  # workers' cwd differs
        optuna, distributed, _ = _imports()
        sweep_dir = out or default_sweep_dir()
        url = storage or _default_storage(sweep_dir)
        wanted = {
            "trials": trials, "fixed": {k: v for k, v in space.fixed.items()},
            "space": _describe_space(space), "budget_argv": _budget(iterations, time_limit),
            "budget": " and ".join(filter(None, [
                f"{iterations:,} updates" if iterations else "",
                f"{time_limit:g} s" if time_limit else ""])),
            "storage": storage}
        _settings(sweep_dir, wanted, write=False)  # the same search as before, if any
        if not scheduler:
            if storage is None:
                os.makedirs(sweep_dir, exist_ok=True)  # for the study's SQLite file
            check_storage(url, optuna)
        client, cluster = _connect(scheduler, workers or os.cpu_count() or 1, distributed,
                                   connect_timeout)
        lock = None
        try:
            os.makedirs(sweep_dir, exist_ok=True)
            lock = DirectoryLock(sweep_dir, "sweep directory").acquire()  # one sweep writes it
            lock.claim()
            settings = _settings(sweep_dir, wanted)
            where = scheduler or f"a local cluster of {len(client.scheduler_info()['workers'])} " \
                                 "single-threaded workers"
            click.echo(f"sweep: {trials} trials on {where}; study in {url}; trials in "
                       f"{os.path.join(sweep_dir, 'trials')}")
            if defaulted_val:
                click.echo(f"the objective is the validation loss: holding out the last "
                           f"{DEFAULT_VAL_FRAC:g} of the text (--set val-frac=F to choose)")
            Sweep(sweep_dir, settings, space, options, client, url, seed, prune_after).run()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
            if lock is not None:
                lock.release()
        show(sweep_dir, storage, quiet=False)
