"""The metric sinks (``--tensorboard``, ``--mlflow``), read back with each tool's own reader:
TensorBoard's event accumulator and MLflow's tracking client. After a crash past the last
checkpoint and a resume, each holds the series ``metrics.csv`` holds."""
from __future__ import annotations

import importlib.util
import json
import signal
import sys

import pytest

import charrnn
from charrnn.callbacks import Callback
from helpers import TEXT, assert_one_line_error, run_in_process

#: A crash at update 150 leaves checkpoint 100 and metrics rows up to 150; the resume goes to 300.
ARGS = dict(hidden=8, seq_length=10, log_every=10, checkpoint_every=100, gradcheck=False,
            plot=False, quiet=True)


class KeyboardAt(Callback):
    """A stop signal at update ``at``: the process sends itself SIGTERM, which training treats
    as Ctrl-C (SIGINT may be ignored where the tests run as a background job)."""

    name = "keyboard-at"
    order = 1000

    def __init__(self, at: int) -> None:
        self.at = at

    def on_update_end(self, trainer) -> None:
        if trainer.update == self.at:
            signal.raise_signal(signal.SIGTERM)


def crash_and_resume(tmp_path, **sink):
    """A run that crashes at update 150 (checkpoint 100), then its resume to 300."""
    from helpers import Crash

    data = tmp_path / "text.txt"
    data.write_text(TEXT * 6, encoding="utf-8")
    out = tmp_path / "run"
    with pytest.raises(charrnn.CharrnnError, match="simulated crash"):
        charrnn.train(data=data, out=out, iterations=300, callbacks=[Crash(150)], **ARGS, **sink)
    before = charrnn.read_metrics(out)
    assert before[-1]["update"] == 150  # rows past the checkpoint, as a crash leaves them
    run = charrnn.train(resume=out, quiet=True)
    assert run.updates == 300 and run.stop_reason is None
    rows = charrnn.read_metrics(out)
    assert [r["update"] for r in rows] == list(range(10, 301, 10))
    return out, before, rows


def test_tensorboard_holds_the_metrics_series_across_a_crash_and_resume(tmp_path):
    pytest.importorskip("tensorboardX")
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    out, before, rows = crash_and_resume(tmp_path, tensorboard=True)

    events = accumulator.EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"loss", "smooth_loss", "epoch", "updates_per_second"} <= set(scalars)
    for key in ("smooth_loss", "loss"):
        points = events.Scalars(key)
        # The crashed process's points past update 100 are purged: one series, as metrics.csv.
        assert [p.step for p in points] == [r["update"] for r in rows]
        for point, row in zip(points, rows):
            assert point.value == pytest.approx(row[key], rel=1e-6, abs=1e-6)
    # Without the purge, updates 110-150 would be there twice: the crashed process's and the
    # resume's (equal values, the resume being exact).
    assert [r["update"] for r in before][-5:] == [110, 120, 130, 140, 150]
    # The run's options, as a text entry (indented: shown as code).
    text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads(text.replace("\n    ", "\n"))["hidden"] == 8
    assert "tensorboard --logdir tensorboard" in (out / "report.md").read_text()


def test_mlflow_holds_the_run_its_options_and_metrics(tmp_path):
    pytest.importorskip("mlflow")
    from charrnn.plugins.mlflow_sink import file_store_allowed
    from mlflow.tracking import MlflowClient

    store = tmp_path / "store"
    out, before, rows = crash_and_resume(tmp_path, mlflow=True, mlflow_uri=store,
                                         mlflow_experiment="sinks")
    record = json.loads((out / "mlflow.json").read_text())
    uri = f"file://{store}"
    assert record["tracking_uri"] == uri
    with file_store_allowed(uri):
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name("sinks")
        runs = client.search_runs([experiment.experiment_id])
        history = {key: client.get_metric_history(record["run_id"], key)
                   for key in ("smooth_loss", "loss")}
    # One MLflow run for the charrnn run, continued by the resume, named by its directory.
    assert [r.info.run_id for r in runs] == [record["run_id"]]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.runName"] == "run"
    assert run.data.params["hidden"] == "8" and run.data.params["seq_length"] == "10"
    for key, points in history.items():
        # MLflow keeps every value it was sent: the crashed process's updates 110-150 appear
        # twice, and the later of the two is the one the resumed run went on from.
        latest = {}
        for point in points:
            latest[point.step] = point.value
        assert sorted(latest) == [r["update"] for r in rows]
        for row in rows:
            assert latest[row["update"]] == pytest.approx(row[key], rel=1e-6, abs=1e-6)
        assert len(points) == len(rows) + 5
    assert f"Logged as MLflow run `{record['run_id']}`" in (out / "report.md").read_text()


def test_mlflow_marks_an_interrupted_run_killed_and_a_resume_running_then_finished(tmp_path):
    pytest.importorskip("mlflow")
    from charrnn.plugins.mlflow_sink import file_store_allowed
    from mlflow.tracking import MlflowClient

    data = tmp_path / "text.txt"
    data.write_text(TEXT * 6, encoding="utf-8")
    out, store = tmp_path / "run", tmp_path / "store"
    uri = f"file://{store}"

    def status() -> str:
        with file_store_allowed(uri):
            client = MlflowClient(tracking_uri=uri)
            run_id = json.loads((out / "mlflow.json").read_text())["run_id"]
            return client.get_run(run_id).info.status

    run = charrnn.train(data=data, out=out, iterations=60, callbacks=[KeyboardAt(30)],
                        mlflow=True, mlflow_uri=store, **ARGS)
    assert run.stop_reason == "interrupted"
    assert status() == "KILLED"
    # The resume is not told the store: it keeps the one the run has.
    run = charrnn.train(resume=out, callbacks=[KeyboardAt(45)], quiet=True)
    assert status() == "KILLED" and run.updates == 45
    run = charrnn.train(resume=out, quiet=True)
    assert run.updates == 60 and status() == "FINISHED"


def test_a_sink_turned_on_at_a_resume_gets_the_earlier_rows(tmp_path):
    pytest.importorskip("tensorboardX")
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    data = tmp_path / "text.txt"
    data.write_text(TEXT * 6, encoding="utf-8")
    out = tmp_path / "run"
    charrnn.train(data=data, out=out, iterations=50, **ARGS)
    assert not (out / "tensorboard").exists()
    charrnn.train(resume=out, iterations=80, tensorboard=True, quiet=True)
    events = accumulator.EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert [p.step for p in events.Scalars("smooth_loss")] == list(range(10, 81, 10))


def test_a_start_over_removes_the_event_folder_a_killed_start_left(tmp_path):
    pytest.importorskip("tensorboardX")
    out = tmp_path / "run"
    (out / "tensorboard").mkdir(parents=True)
    stale = out / "tensorboard" / "events.out.tfevents.1.killed"
    stale.write_bytes(b"")
    (out / "config.json").write_text("{}")
    data = tmp_path / "text.txt"
    data.write_text(TEXT * 6, encoding="utf-8")
    charrnn.train(data=data, out=out, iterations=20, tensorboard=True, **ARGS)
    assert not stale.exists() and list((out / "tensorboard").iterdir())


@pytest.mark.parametrize("flag, module, extra", [("--tensorboard", "tensorboardX", "tensorboard"),
                                                 ("--mlflow", "mlflow", "mlflow")])
def test_a_sink_without_its_library_is_refused_in_one_line(tmp_path, monkeypatch, flag, module,
                                                           extra):
    # The library made unimportable in this process, as in an environment without the extra.
    monkeypatch.setitem(sys.modules, module, None)
    assert importlib.util.find_spec(module) is None
    data = tmp_path / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    proc = run_in_process("run", "--data", data, "--out", tmp_path / "run", flag, cwd=tmp_path)
    assert_one_line_error(proc, f"{flag} needs", f"pip install 'charrnn-kit[{extra}]'")
    assert not (tmp_path / "run").exists()


def test_an_unusable_mlflow_store_is_one_line_before_the_run_begins(tmp_path):
    pytest.importorskip("mlflow")
    data = tmp_path / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    proc = run_in_process("run", "--data", data, "--out", tmp_path / "run", "--mlflow",
                          "--mlflow-uri", "nosuchscheme://somewhere", "--no-gradcheck",
                          cwd=tmp_path)
    assert_one_line_error(proc, "MLflow could not open the tracking store at "
                                "nosuchscheme://somewhere", "pass another --mlflow-uri")
    assert not (tmp_path / "run").exists()
