"""charrnn from Python: ``charrnn.train`` gives what ``charrnn run`` gives, ``charrnn.load`` what
``charrnn sample`` prints, and a bad option is refused with the command line's words before
anything is written."""
from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import numpy
import pytest

import charrnn
from helpers import LEAN, TEXT, run_in_process

#: Small and quick, but with every file a run writes: samples, validation, metrics, report.
OPTIONS = dict(hidden=16, seq_length=10, iterations=120, checkpoint_every=40, sample_every=40,
               sample_length=30, log_every=20, val_frac=0.2, val_every=40, gradcheck=False,
               plot=False, quiet=True)


def as_argv(options):
    argv = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False:
            argv.append("--no-" + flag[2:])
        else:
            argv += [flag, str(value)]
    return argv


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def metric_rows(run_dir):
    """metrics.csv without its one column that measures the machine (updates per second)."""
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as fh:
        return [{k: v for k, v in row.items() if k != "updates_per_second"}
                for row in csv.DictReader(fh)]


#: What differs between two runs of one configuration: the run's id, its timings, the checksum
#: of a header that holds them.
UNIQUE = ("run_id", "train_seconds", "header_checksum")


def arrays(path):
    """A checkpoint's arrays, and its header without what :data:`UNIQUE` names."""
    with numpy.load(path) as npz:
        out = {name: npz[name] for name in npz.files if name != "meta"}
        meta = json.loads(str(npz["meta"]))
    for key in UNIQUE:
        meta.pop(key)
    meta["callbacks"]["report"].pop("sessions")  # [first, last, updates per second]
    out["meta"] = json.dumps(meta, sort_keys=True)
    return out


def test_train_writes_the_run_directory_charrnn_run_writes(tmp_path, data):
    by_api = charrnn.train(data=str(data), out=str(tmp_path / "api"), **OPTIONS)
    proc = run_in_process("run", "--data", data, "--out", tmp_path / "cli", *as_argv(OPTIONS),
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    api, cli = tmp_path / "api", tmp_path / "cli"
    assert sorted(p.name for p in api.iterdir()) == sorted(p.name for p in cli.iterdir())
    assert metric_rows(api) == metric_rows(cli) and len(metric_rows(api)) == 6
    assert (api / "samples.md").read_text() == (cli / "samples.md").read_text()
    for name in ("latest.npz", "best.npz"):
        ours, theirs = arrays(api / name), arrays(cli / name)
        assert ours.keys() == theirs.keys()
        for key in ours:
            numpy.testing.assert_array_equal(ours[key], theirs[key], err_msg=f"{name}: {key}")
    config = [json.loads((d / "config.json").read_text()) for d in (api, cli)]
    for c in config:
        c.pop("run_id")
    assert config[0] == config[1]
    assert by_api.directory == str(api) and by_api.updates == 120 and by_api.stop_reason is None
    assert by_api.latest_checkpoint == str(api / "latest.npz")
    assert by_api.best_checkpoint == str(api / "best.npz")
    assert [row["update"] for row in by_api.metrics] == [20, 40, 60, 80, 100, 120]
    assert by_api.metrics[-1]["val_loss"] == pytest.approx(by_api.logs["val_loss"], rel=1e-6)


def test_load_samples_what_charrnn_sample_prints(tmp_path, data):
    run = charrnn.train(data=str(data), out=str(tmp_path / "run"), **OPTIONS)
    for prime in ("", "the "):
        proc = run_in_process("sample", "--checkpoint", run.directory, "--length", 200,
                              "--seed", 7, "--temperature", 0.8, "--prime", prime, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        generator = charrnn.load(run.directory)
        text = generator.sample(200, seed=7, temperature=0.8, prime=prime)
        assert proc.stdout == prime + text + "\n"
        assert len(text) == 200 and set(text) <= set(TEXT)
        streamed = generator.stream(200, seed=7, temperature=0.8, prime=prime)
        assert not isinstance(streamed, str)
        assert "".join(streamed) == text
    # Another seed, another text; no seed, a fresh one each time.
    assert charrnn.load(run.directory).sample(200, seed=8) != text


def test_loss_is_the_validation_loss_the_run_reports(tmp_path, data):
    options = {**OPTIONS, "batch_size": 1}
    run = charrnn.train(data=str(data), out=str(tmp_path / "run"), **options)
    held_out = TEXT[len(TEXT) - int(round(len(TEXT) * options["val_frac"])):]
    scored = charrnn.load(run.latest_checkpoint).loss(held_out)
    assert run.logs["val_update"] == 120
    assert scored == pytest.approx(run.logs["val_loss"], rel=1e-12)
    assert math.log(len(set(TEXT))) > scored > 0  # it has learnt something


def test_an_in_process_callback_sees_every_update(tmp_path, data):
    class Recorder(charrnn.Callback):
        name = "recorder"

        def __init__(self):
            self.updates, self.began, self.ended = [], 0, 0

        def on_train_begin(self, trainer):
            self.began += 1

        def on_update_end(self, trainer):
            self.updates.append(trainer.update)

        def on_train_end(self, trainer):
            self.ended += 1

    recorder = Recorder()
    run = charrnn.train(data=data, out=tmp_path / "run", callbacks=[recorder],  # paths work
                        **{**OPTIONS, "iterations": 50})
    assert recorder.updates == list(range(1, 51))
    assert (recorder.began, recorder.ended) == (1, 1)
    assert run.session_updates == 50
    # Resumed from Python: the callback sees the updates of this call only.
    again = Recorder()
    resumed = charrnn.train(resume=run.directory, iterations=80, callbacks=[again])
    assert again.updates == list(range(51, 81))
    assert (resumed.updates, resumed.session_updates) == (80, 30)


def test_a_stop_from_a_callback_ends_the_run_with_its_reason(tmp_path, data):
    class StopAt(charrnn.Callback):
        name = "stop_at"

        def on_update_end(self, trainer):
            if trainer.update == 30:
                trainer.stop("enough for this test")

    run = charrnn.train(data=str(data), out=str(tmp_path / "run"), callbacks=[StopAt()],
                        **OPTIONS)
    assert (run.updates, run.stop_reason) == (30, "enough for this test")
    assert run.stop_reason.kind is charrnn.Stop.REQUESTED


@pytest.mark.parametrize("options, flag", [
    (dict(hidden=-1), "--hidden"),
    (dict(hidden=2.5), "--hidden"),
    (dict(eta=float("nan")), "--eta"),
    (dict(dropout=1.0), "--dropout"),
    (dict(model="transformer"), "--model"),
    (dict(dtype="float16"), "--dtype"),
    (dict(sample_every=0), "--sample-every"),
])
def test_a_bad_option_is_refused_with_the_command_lines_words_before_anything_is_written(
        tmp_path, data, options, flag):
    out = tmp_path / "run"
    (key, value), = options.items()
    with pytest.raises(charrnn.InvalidOption, match=f"^Invalid value for '{flag}': "):
        charrnn.train(data=str(data), out=str(out), **options)
    assert not out.exists()
    # Given as the command line gets it, as text, the message is the command line's own.
    with pytest.raises(charrnn.InvalidOption) as caught:
        charrnn.train(data=str(data), out=str(out), **{key: str(value)})
    proc = run_in_process("run", "--data", data, "--out", out, flag, value, cwd=tmp_path)
    assert proc.returncode == 2 and not out.exists()
    assert proc.stderr.strip() == f"Error: {caught.value} (see 'charrnn run --help')"


def test_an_unknown_option_names_the_closest_one(tmp_path):
    with pytest.raises(charrnn.InvalidOption, match=r"--hiden \(hiden=\); did you mean hidden"):
        charrnn.train(hiden=8, out=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    with pytest.raises(charrnn.InvalidOption, match="not a charrnn.Callback"):
        charrnn.train(callbacks=[object()], out=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_other_problems_raise_charrnn_errors_with_the_command_lines_message(tmp_path):
    with pytest.raises(charrnn.CharrnnError, match="no checkpoint") as caught:
        charrnn.load(tmp_path)
    proc = run_in_process("sample", "--checkpoint", tmp_path, cwd=tmp_path)
    assert proc.stderr.strip() == f"Error: {caught.value}"
    with pytest.raises(charrnn.CharrnnError, match="not a run directory"):
        charrnn.train(resume=str(tmp_path / "nowhere"))


def test_a_diverged_run_raises_and_carries_its_run(tmp_path, data):
    with pytest.raises(charrnn.TrainingDiverged, match="lower --eta") as caught:
        charrnn.train(data=str(data), out=str(tmp_path / "run"), eta=1e6, sigma=5.0,
                      **{**OPTIONS, "iterations": 500})
    assert caught.value.run.directory == str(tmp_path / "run")
    assert caught.value.run.stop_reason.startswith("training diverged")  # the 0.5 string
    assert caught.value.run.stop_reason.kind is charrnn.Stop.DIVERGED


def test_load_reads_a_file_or_a_directory_on_any_backend(tmp_path, data):
    run = charrnn.train(data=str(data), out=str(tmp_path / "run"), **OPTIONS)
    from_dir, from_file = charrnn.load(run.directory), charrnn.load(run.best_checkpoint)
    assert from_dir.checkpoint == from_file.checkpoint == run.best_checkpoint
    assert from_dir.vocab == sorted(set(TEXT))
    assert run.load(which="latest").sample(50, seed=1) == \
        charrnn.load(run.latest_checkpoint).sample(50, seed=1)
    with pytest.raises(charrnn.CharrnnError, match="unknown backend 'nope'"):
        charrnn.load(run.directory, backend="nope")
    with pytest.raises(charrnn.CharrnnError, match="not in the checkpoint's vocabulary"):
        from_dir.loss("QQQ")
    with pytest.raises(charrnn.InvalidOption, match="'temperature'"):
        from_dir.sample(10, temperature=0)


def test_run_config_is_the_schema_of_charrnn_run():
    config = charrnn.RunConfig(hidden=64, model="lstm")
    assert (config.hidden, config["model"], config.layers, config.sample_every) == \
        (64, "lstm", 1, 10_000)
    assert config.explicit == {"hidden", "model"}
    assert config.replace(layers=2).layers == 2 and config.layers == 1
    quick = charrnn.RunConfig(preset="quick", hidden=128)
    assert (quick.model, quick.hidden, quick.batch_size) == ("gru", 128, 32)
    assert "--hidden 128" in quick.command_line() and "--model gru" in quick.command_line()
    from charrnn.registry import run_schema

    schema = run_schema()
    assert {"hidden", "sample_every", "val_every", "gradcheck"} <= set(schema.names())
    assert "model" in schema.fixed_on_resume() and "out" in schema.not_saved()


def test_everything_public_is_listed_and_importable():
    for name in charrnn.__all__:
        assert getattr(charrnn, name) is not None, name
    with pytest.raises(AttributeError):
        charrnn.not_a_name  # noqa: B018


def test_a_plugin_option_declared_the_0_5_way_still_works():
    import click

    from charrnn.legacy_options import legacy_option
    from charrnn.options import POSITIVE_FLOAT

    every = legacy_option(("--every-n",), dict(type=click.IntRange(min=1), default=3,
                                                show_default=True, help="h"), "old")
    assert (every.name, every.type, every.min, every.default) == ("every_n", int, 1, 3)
    with pytest.raises(ValueError, match="not in the range x>=1"):
        every.check("0")
    rate = legacy_option(("--rate",), dict(type=POSITIVE_FLOAT, default=None), "old")
    assert rate.type is float and rate.min_open and rate.check("0.5") == 0.5
    with pytest.raises(ValueError, match="not a finite number"):
        rate.check("nan")
    flag = legacy_option(("--thing/--no-thing",), dict(default=True), "old")
    assert flag.is_flag and flag.default is True
    kind = legacy_option(("--kind",), dict(type=click.Choice(["a", "b"]), default="a"), "old")
    assert kind.choices == ("a", "b")
    with pytest.raises(ValueError, match="not one of"):
        kind.check("c")
    custom = legacy_option(("--path",), dict(type=click.Path(), default="."), "old")
    assert custom.check("somewhere") == "somewhere"


def test_lean_options_are_options_of_the_schema():
    """The tests' LEAN flags parse through the schema as the command line parses them."""
    from charrnn.registry import run_schema

    values = run_schema().parse_argv(list(LEAN))
    assert values == {"gradcheck": False, "plot": False, "report": False, "quiet": True}


LEGACY = Path(__file__).resolve().parent / "data" / "charrnn-legacy-option"


def test_a_0_5_plugin_option_works_with_one_deprecation_line(tmp_path, data, with_examples):
    """A plugin written against 0.5's documented interface, found through its entry point: its
    option is on the command line and in the schema, is checked, reaches its callback, and one
    line says what replaces the old way."""
    with_examples(LEGACY)
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the command line says it in its own line, once
        proc = run_in_process("run", "--data", data, "--out", out, "--iterations", 30,
                              "--mark-every", 10, *LEAN, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out / "marks.txt").read_text().split() == ["10", "20", "30"]
    notes = [line for line in proc.stderr.splitlines() if line.startswith("Deprecated:")]
    assert len(notes) == 1 and "--mark-every" in notes[0] and "charrnn.Option" in notes[0], \
        proc.stderr
    bad = run_in_process("run", "--data", data, "--mark-every", 0, cwd=tmp_path)
    assert "Error: Invalid value for '--mark-every': 0 is not in the range x>=1." in bad.stderr
    with pytest.warns(FutureWarning, match="--mark-every.*charrnn.Option"):
        with pytest.raises(charrnn.InvalidOption, match="'--mark-every': 0 is not in the range"):
            charrnn.train(data=str(data), mark_every=0)
    help_text = run_in_process("run", "--help", cwd=tmp_path).stdout
    assert "--mark-every" in help_text
    listing = run_in_process("plugins", cwd=tmp_path).stdout
    assert "deprecated interfaces in use:" in listing and "--mark-every" in listing


def test_train_and_load_work_outside_the_main_thread(tmp_path, data):
    """A web service trains and samples in worker threads, where no signal handler can be set."""
    from concurrent.futures import ThreadPoolExecutor

    def job():
        run = charrnn.train(data=str(data), out=str(tmp_path / "run"),
                            **{**OPTIONS, "iterations": 30})
        return run.updates, charrnn.load(run.directory).sample(20, seed=0)

    with ThreadPoolExecutor(1) as pool:
        updates, text = pool.submit(job).result(timeout=120)
    assert updates == 30 and len(text) == 20


def test_the_run_reports_the_configuration_it_used(tmp_path, data):
    run = charrnn.train(data=str(data), out=str(tmp_path / "run"), **{**OPTIONS, "iterations": 20})
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert run.config["eta"] == 0.1 and run.config["sigma"] == 0.01  # resolved defaults
    assert {k: v for k, v in saved.items() if k in run.config} == run.config
    resumed = charrnn.train(resume=run.directory, iterations=30, eta=0.05)
    assert (resumed.config["eta"], resumed.config["hidden"]) == (0.05, 16)
