"""``--mlflow``: the run's configuration and metrics log in MLflow, through MLflow's own client
(``mlflow-skinny``, from the extra ``pip install 'charrnn-kit[mlflow]'``).

``--mlflow-uri`` names the tracking store: a directory (``mlruns`` in the current one unless
told otherwise, read with ``mlflow ui --backend-store-uri mlruns``), or any URI MLflow takes,
such as a tracking server's ``http://...``. ``MLFLOW_TRACKING_URI`` is used when it is set
and the option is not given. MLflow keeps local directories only behind
``MLFLOW_ALLOW_FILE_STORE=true``; this plugin sets it for its own calls to a directory store.

Each charrnn run is one MLflow run, named by its directory, under ``--mlflow-experiment``:
its options are the run's parameters, the keys of :mod:`charrnn.metrics` its metrics, stepped
by update. A resume continues the same MLflow run (its id is kept in the run directory's
``mlflow.json``), and its status follows the stop: FINISHED, KILLED after Ctrl-C (the run
goes on when resumed), FAILED after an error or a divergence. MLflow cannot delete a logged
value, so after a kill the updates between the last checkpoint and the kill appear twice in
its history, the later value being the one the resumed run went on from; ``metrics.csv`` and
TensorBoard hold one series.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import time
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence
from urllib.parse import urlparse

from charrnn import hookimpl
from charrnn.config import Option
from charrnn.errors import CharrnnError
from charrnn.files import atomic_write_text
from charrnn.metrics import COLUMNS, UPDATE, MetricsSink, Row
from charrnn.reporting import ReportSection
from charrnn.stops import Stop

#: The run directory's record of its MLflow run.
RECORD_FILE = "mlflow.json"
DEFAULT_STORE = "mlruns"
DEFAULT_EXPERIMENT = "charrnn"
#: What MLflow takes in one call, and the longest parameter value it keeps.
BATCH = 1000
PARAM_LENGTH = 6000
REPORT_SECTION = 45

#: The MLflow status a run ends with, by the kind of stop (None: all its updates done).
STATUS = {None: "FINISHED", Stop.TIME_LIMIT: "FINISHED", Stop.REQUESTED: "FINISHED",
          Stop.INTERRUPTED: "KILLED", Stop.DIVERGED: "FAILED", Stop.ERROR: "FAILED",
          Stop.CALLBACK_FAILED: "FAILED"}


def tracking_uri(value: Optional[str]) -> str:
    """The store ``--mlflow-uri`` names, as a URI: a path becomes an absolute ``file:`` URI, so
    that a resume from another directory finds the same store."""
    value = (value or "").strip() or os.environ.get("MLFLOW_TRACKING_URI", "") or DEFAULT_STORE
    scheme = urlparse(value).scheme
    if scheme and len(scheme) > 1:  # a URI (not a Windows drive letter)
        return value
    return "file://" + os.path.abspath(os.path.expanduser(value))


@contextlib.contextmanager
def file_store_allowed(uri: str) -> Iterator[None]:
    """MLflow refuses a directory store unless told it is wanted: told, for this call only."""
    if not uri.startswith("file:"):
        yield
        return
    before = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = before


def read_record(run_dir: str) -> Dict[str, Any]:
    try:
        with open(os.path.join(run_dir, RECORD_FILE), encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


class MlflowSink(MetricsSink):
    name = "mlflow"
    files = (RECORD_FILE,)

    def __init__(self, uri: str, experiment: str = DEFAULT_EXPERIMENT,
                 uri_given: bool = True) -> None:
        super().__init__()
        self.uri = uri
        #: False when the store is the default: a resume then keeps the store the run has.
        self.uri_given = uri_given
        self.experiment = experiment
        self.client: Any = None
        self.experiment_id: Optional[str] = None
        self.run_id: Optional[str] = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Optional["MlflowSink"]:
        if not options.get("mlflow"):
            return None
        if importlib.util.find_spec("mlflow") is None:
            raise CharrnnError("--mlflow needs MLflow, which is not installed; pip install "
                               "'charrnn-kit[mlflow]', or leave --mlflow out")
        experiment = (options.get("mlflow_experiment") or "").strip() or DEFAULT_EXPERIMENT
        given = options.get("mlflow_uri")
        sink = cls(tracking_uri(given), experiment, uri_given=bool((given or "").strip()))
        if sink.uri_given or not options.get("resume"):
            # A store that cannot be used is refused before the run begins. (A resume told no
            # store uses the one its run has, known once the run directory is read.)
            sink.connect()
        return sink

    # -- the MLflow run ----------------------------------------------------------------------

    def _call(self, what: str, fn, *args, **kwargs):
        """A call to MLflow; its failure is one line naming the store and what to do."""
        try:
            with file_store_allowed(self.uri):
                return fn(*args, **kwargs)
        except Exception as exc:  # MLflow raises its own types, and those of what it wraps
            message = " ".join(str(exc).split())
            if len(message) > 300:
                message = message[:300] + "..."
            raise CharrnnError(f"MLflow could not {what} at {self.uri} ({message}); pass "
                               "another --mlflow-uri, or leave --mlflow out") from None

    def connect(self) -> None:
        """Open the tracking store at :attr:`uri` and find (or make) the experiment."""
        from mlflow.tracking import MlflowClient

        self.client = self._call("open the tracking store", MlflowClient, tracking_uri=self.uri)
        experiment = self._call("read the experiment", self.client.get_experiment_by_name,
                                self.experiment)
        self.experiment_id = experiment.experiment_id if experiment is not None else \
            self._call("create the experiment", self.client.create_experiment, self.experiment)

    def _continued_run(self, trainer) -> Optional[str]:
        """The MLflow run this charrnn run already has in the store, if any."""
        record = read_record(trainer.run_dir)
        if not self.uri_given and isinstance(record.get("tracking_uri"), str) and \
                record["tracking_uri"] != self.uri:
            self.uri = record["tracking_uri"]  # the store the run has, wherever it resumes from
            self.client = None
        if self.client is None:
            self.connect()
        if trainer.update == 0 or record.get("tracking_uri") != self.uri or \
                record.get("run_id_charrnn") != trainer.run_id or not record.get("run_id"):
            return None
        try:
            with file_store_allowed(self.uri):
                self.client.get_run(record["run_id"])
        except Exception:  # deleted from the store, or never finished being made
            return None
        return record["run_id"]

    def open(self, trainer) -> int:
        if not trainer.run_dir:
            return 0
        continued = self._continued_run(trainer)
        if continued is not None:
            self.run_id = continued
            self._call("mark the run as running", self.client.update_run, continued,
                       status="RUNNING")
            return trainer.update
        from charrnn import __version__

        tags = {"mlflow.runName": os.path.basename(os.path.abspath(trainer.run_dir)),
                "charrnn.run_dir": os.path.abspath(trainer.run_dir),
                "charrnn.run_id": str(trainer.run_id), "charrnn.version": __version__}
        run = self._call("create a run", self.client.create_run, self.experiment_id, tags=tags)
        self.run_id = run.info.run_id
        atomic_write_text(os.path.join(trainer.run_dir, RECORD_FILE),
                          json.dumps({"tracking_uri": self.uri, "experiment": self.experiment,
                                      "run_id": self.run_id,
                                      "run_id_charrnn": trainer.run_id}, indent=2))
        self._log_params(trainer.config)
        return 0

    def _log_params(self, config: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(key, str(value)[:PARAM_LENGTH])
                  for key, value in sorted(config.items()) if value is not None]
        for i in range(0, len(params), 100):
            self._call("log the parameters", self.client.log_batch, self.run_id,
                       params=params[i:i + 100])

    def write(self, rows: Sequence[Row]) -> None:
        if self.client is None:
            return
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(key, float(row[key]), stamp, int(row[UPDATE]))
                   for row in rows for key in COLUMNS
                   if key != UPDATE and row.get(key) is not None]
        for i in range(0, len(metrics), BATCH):
            self._call("log the metrics", self.client.log_batch, self.run_id,
                       metrics=metrics[i:i + BATCH])

    def close(self, trainer) -> None:
        if self.client is None or self.run_id is None:
            return
        kind = getattr(trainer.stop_reason, "kind", None)
        self._call("end the run", self.client.set_terminated, self.run_id,
                   STATUS.get(kind, "FINISHED"))
        self.client = None


@hookimpl
def register_callbacks(register):
    register(MlflowSink)


@hookimpl
def add_run_options(add_option):
    add_option(Option("mlflow", bool, False,
                      help="Also log the run's options and metrics to MLflow (needs the mlflow "
                           "extra); see --mlflow-uri."))
    add_option(Option("mlflow_uri", str, None, metavar="DIR|URI", show_default=False,
                      help="MLflow's tracking store, a directory or a URI (with --mlflow). "
                           "[default: $MLFLOW_TRACKING_URI, or ./mlruns]"))
    add_option(Option("mlflow_experiment", str, DEFAULT_EXPERIMENT,
                      help="The MLflow experiment the run is logged under (with --mlflow)."))


@hookimpl
def report_sections(trainer):
    record = read_record(trainer.run_dir or "")
    if not record.get("run_id"):
        return None
    return ReportSection("MLflow", f"Logged as MLflow run `{record['run_id']}` of experiment "
                                   f"`{record.get('experiment', '')}` in "
                                   f"`{record.get('tracking_uri', '')}`.\n", REPORT_SECTION)
