"""``charrnn run``'s model, batch, optimizer and time options end to end, and their bad input."""
from __future__ import annotations

import csv
import json

import numpy
import pytest
from charrnn.checkpoint import load_checkpoint
from helpers import LEAN, TEXT, assert_one_line_error, read_samples

#: 2,460 characters.
LONG_TEXT = TEXT * 6


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(LONG_TEXT, encoding="utf-8")
    return path


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# -- bad input: one line, non-zero, nothing written ----------------------------------------------

@pytest.mark.parametrize("args, parts", [
    (("--batch-size", "200"), ("--batch-size 200 is too large", "largest batch that fits is 94")),
    (("--batch-size", "20", "--seq-length", "200"), ("--batch-size 20", "largest batch that fits is 12")),
    (("--layers", "0"), ("'--layers'", "0 is not in the range x>=1")),
    (("--dropout", "1"), ("'--dropout'", "1.0 is not in the range 0<=x<1")),
    (("--dropout", "-0.5"), ("'--dropout'",)),
    (("--model", "transformer"), ("'--model'", "'transformer' is not one of", "'gru'", "'lstm'",
                                  "'rnn'")),
    (("--optimizer", "lbfgs"), ("'--optimizer'", "'adam'", "'rmsprop'")),
    (("--clip", "-1"), ("'--clip'",)),
    (("--time-limit", "0"), ("'--time-limit'",)),
    (("--seed", "-1"), ("'--seed'",)),
    (("--warmup", "-1"), ("'--warmup'", "-1 is not in the range x>=0")),
    (("--lr-final", "2"), ("'--lr-final'", "2.0 is not in the range 0<=x<=1")),
    (("--lr-schedule", "step"), ("'--lr-schedule'", "'step' is not one of", "'cosine'")),
])
def test_bad_model_and_batch_options(run_charrnn, data_file, tmp_path, args, parts):
    out = tmp_path / "never"
    proc = run_charrnn("run", "--data", data_file, "--iterations", 5, "--out", out, *args)
    assert_one_line_error(proc, *parts)
    assert not out.exists() and proc.stdout == ""


@pytest.mark.parametrize("option", ["--eta", "--sigma", "--clip", "--clip-norm", "--lr-final",
                                    "--dropout", "--time-limit",
                                    "--val-frac", "--temperature", "--target-loss",
                                    "--gradcheck-step", "--gradcheck-threshold",
                                    "--gradcheck-sigma"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_nan_or_infinity_for_a_float_option_is_one_line(run_charrnn, data_file, tmp_path, option,
                                                        value):
    out = tmp_path / "never"
    proc = run_charrnn("run", "--data", data_file, "--iterations", 5, "--out", out, option, value)
    assert_one_line_error(proc, f"'{option}'", f"'{value}' is not a finite number")
    assert not out.exists() and proc.stdout == ""


def test_nan_in_gradcheck_and_sample_commands(run_charrnn, data_file):
    proc = run_charrnn("gradcheck", "--data", data_file, "--step", "nan")
    assert_one_line_error(proc, "'--step'", "not a finite number")
    proc = run_charrnn("sample", "--checkpoint", "x.npz", "--temperature", "inf")
    assert_one_line_error(proc, "'--temperature'", "not a finite number")


# -- defaults that follow the optimizer and the model ---------------------------------------------

def test_learning_rate_and_initial_scale_follow_the_optimizer_and_model(run_charrnn, data_file,
                                                                        tmp_path):
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data_file, "--model", "lstm", "--optimizer", "adam",
                       "--hidden", 8, "--iterations", 3, "--out", out, *LEAN)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert (config["eta"], config["sigma"], config["clip"]) == (0.002, 0.05, 5.0)
    assert config["model"] == "lstm" and config["optimizer"] == "adam"
    assert "optimizer adam (eta 0.002, clip 5, betas 0.9 0.999)" in proc.stdout
    out = tmp_path / "run2"
    proc = run_charrnn("run", "--data", data_file, "--optimizer", "rmsprop", "--eta", "0.01",
                       "--clip", "0", "--hidden", 8, "--iterations", 3, "--out", out, *LEAN)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert (config["eta"], config["sigma"], config["clip"]) == (0.01, 0.01, 0.0)
    assert "optimizer rmsprop (eta 0.01, no clip, decay 0.95)" in proc.stdout


# -- a batched, stacked, gated run end to end ------------------------------------------------------

def test_a_stacked_lstm_with_batches_and_dropout_trains_reports_and_samples(run_charrnn,
                                                                             data_file, tmp_path):
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data_file, "--model", "lstm", "--layers", 2,
                       "--hidden", 16, "--batch-size", 4, "--seq-length", 20, "--dropout", 0.1,
                       "--optimizer", "adam", "--iterations", 60, "--log-every", 20,
                       "--sample-every", 30, "--sample-length", 30, "--val-frac", 0.1,
                       "--val-every", 30, "--gradcheck-entries", 5, "--out", out)
    assert proc.returncode == 0, proc.stderr
    stdout = proc.stdout
    assert "model lstm (2 layers of 16, dropout 0.1; " in stdout
    assert "batch 4 x sequence 20; 60 updates" in stdout
    assert "gradient check: numpy backend in float64, lstm 2 layers of 5, batch 4" in stdout
    assert "PASS: max relative error" in stdout
    progress = [line for line in stdout.splitlines() if line.startswith("update ")]
    assert progress and all("nats/char" in line and "bpc)" in line and "chars/s" in line
                            for line in progress)
    rows = read_rows(out / "metrics.csv")
    assert [int(r["update"]) for r in rows] == [20, 40, 60]
    assert float(rows[-1]["smooth_loss"]) < float(rows[0]["smooth_loss"])
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| model | lstm (2 layers of 16, dropout 0.1; " in report
    assert "| batch | 4 stream(s) of 20 characters per update" in report
    assert "| Wx1 |" in report and "| Wh2 |" in report  # a gradient-check row per parameter
    ckpt = load_checkpoint(str(out / "latest.npz"))
    assert ckpt.model_name == "lstm" and ckpt.model_options == {"hidden": 16, "layers": 2}
    assert [s.shape for s in ckpt.state] == [(2, 4, 16), (2, 4, 16)]
    sample = run_charrnn("sample", "--checkpoint", out, "--length", 40, "--prime", "the ")
    assert sample.returncode == 0, sample.stderr
    assert sample.stdout.startswith("the ") and len(sample.stdout.rstrip("\n")) == 44


def test_exact_resume_of_a_batched_lstm_with_adam_and_dropout(run_charrnn, data_file, tmp_path):
    common = ("--data", data_file, "--model", "lstm", "--hidden", 12, "--layers", 2,
              "--batch-size", 4, "--seq-length", 16, "--optimizer", "adam", "--dropout", 0.2,
              "--log-every", 1, "--checkpoint-every", 25, "--sample-every", 20,
              "--sample-length", 15, "--val-frac", 0.1, "--val-every", 10, *LEAN)
    full, part = tmp_path / "full", tmp_path / "part"
    assert run_charrnn("run", *common, "--iterations", 60, "--out", full).returncode == 0
    proc = run_charrnn("run", *common, "--iterations", 35, "--out", part)
    assert proc.returncode == 0, proc.stderr
    proc = run_charrnn("run", "--resume", part, "--iterations", 60)
    assert proc.returncode == 0, proc.stderr
    assert "resuming at update 35" in proc.stdout
    rows_full, rows_part = read_rows(full / "metrics.csv"), read_rows(part / "metrics.csv")
    assert [r["update"] for r in rows_part] == [str(u) for u in range(1, 61)]
    keys = ("update", "epoch", "loss", "smooth_loss")
    assert [tuple(r[k] for k in keys) for r in rows_part] == \
        [tuple(r[k] for k in keys) for r in rows_full]
    # Validation losses where both runs measured one (the stopped run also measured at its end,
    # at update 35, and its rows until 40 show that newer value).
    assert [r["val_loss"] for r in rows_part[9::10]] == [r["val_loss"] for r in rows_full[9::10]]
    a, b = load_checkpoint(str(full / "latest.npz")), load_checkpoint(str(part / "latest.npz"))
    for name, value in a.params.items():
        assert numpy.array_equal(value, b.params[name]), name
    for key in ("m", "v"):
        for name, value in a.optimizer[key].items():
            assert numpy.array_equal(value, b.optimizer[key][name]), (key, name)
    assert a.optimizer["t"] == b.optimizer["t"] == 60
    for s_a, s_b in zip(a.state, b.state):
        assert numpy.array_equal(s_a, s_b)
    assert a.meta["dropout_rng"] == b.meta["dropout_rng"]
    # every sample the uninterrupted run took, the resumed one took too, the same (it also has
    # the one taken when the first process stopped, at 35)
    samples_full = read_samples(full / "samples.md")
    samples_part = read_samples(part / "samples.md")
    assert sorted(samples_full) == [0, 20, 40, 60] and sorted(samples_part) == [0, 20, 35, 40, 60]
    assert all(samples_part[u] == text for u, text in samples_full.items())


@pytest.mark.parametrize("flag, value, saved", [("--model", "gru", "lstm"),
                                                 ("--layers", "3", "2"),
                                                 ("--batch-size", "2", "4")])
def test_resuming_with_another_model_shape_is_refused(run_charrnn, data_file, tmp_path, flag,
                                                      value, saved):
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data_file, "--model", "lstm", "--layers", 2,
                       "--batch-size", 4, "--hidden", 8, "--iterations", 5, "--out", out, *LEAN)
    assert proc.returncode == 0, proc.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = run_charrnn("run", "--resume", out, "--iterations", 10, flag, value)
    assert_one_line_error(proc, f"trained with {flag} {saved}, not {value}", f"drop {flag}")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# -- the time budget ----------------------------------------------------------------------------------

def test_a_time_limit_stops_cleanly_saves_and_resumes(run_charrnn, data_file, tmp_path):
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data_file, "--hidden", 8, "--time-limit", 1.5,
                       "--log-every", 50, "--no-gradcheck", "--no-plot", "--out", out)
    assert proc.returncode == 0, proc.stderr
    startup = next(line for line in proc.stdout.splitlines() if line.startswith("backend "))
    assert "time limit 1.5 s" in startup  # the start-up line: no update count
    assert "stopped (time limit of 1.5 s reached)" in proc.stdout
    assert f"continue with: charrnn run --resume {out} --time-limit" in proc.stdout
    ckpt = load_checkpoint(str(out / "latest.npz"))
    first = ckpt.meta["update"]
    assert first > 0 and 1.5 <= ckpt.meta["train_seconds"] < 30
    assert ckpt.config["iterations"] is None and ckpt.config["time_limit"] == 1.5
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| ended | stopped: time limit of 1.5 s reached |" in report
    assert "| time limit | 1.5 s of training;" in report

    # spent: resuming needs a larger budget, and says so without touching the run
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = run_charrnn("run", "--resume", out)
    assert_one_line_error(proc, "has used its --time-limit of 1.5 s",
                          "pass a larger --time-limit")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    proc = run_charrnn("run", "--resume", out, "--time-limit", 3)
    assert proc.returncode == 0, proc.stderr
    assert "stopped (time limit of 3 s reached)" in proc.stdout
    again = load_checkpoint(str(out / "latest.npz"))
    assert again.meta["update"] > first and again.meta["train_seconds"] >= 3


def test_iterations_still_end_a_time_limited_run(run_charrnn, data_file, tmp_path):
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data_file, "--hidden", 8, "--time-limit", 600,
                       "--iterations", 20, "--out", out, *LEAN)
    assert proc.returncode == 0, proc.stderr
    assert "done: 20 updates" in proc.stdout
    assert load_checkpoint(str(out / "latest.npz")).meta["update"] == 20
