"""Recipes: the gradient-norm clip, the learning-rate schedule and presets, end to end."""
from __future__ import annotations

import json
import math

import numpy
import pytest
from charrnn.errors import CallbackFailed
from charrnn.backends.numpy_backend import NumpyBackend
from charrnn.checkpoint import load_checkpoint
from charrnn.data import Corpus
from charrnn.plugins.schedule import LearningRateSchedule
from charrnn.registry import get_registry
from helpers import LEAN, TEXT, Crash, assert_one_line_error, make_trainer, run_options

LONG_TEXT = TEXT * 6


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(LONG_TEXT, encoding="utf-8")
    return path


@pytest.fixture
def corpus():
    return Corpus.from_text(LONG_TEXT, "test")


# -- --clip-norm ------------------------------------------------------------------------------


@pytest.mark.parametrize("model, batch", [("rnn", 1), ("lstm", 3)])
def test_clip_norm_bounds_the_step_per_character(corpus, model, batch):
    """With plain SGD and no elementwise clip, one update moves the parameters by eta times the
    clipped gradient: its norm is then exactly the limit times T (the loss sums over T steps)."""
    be = NumpyBackend("float64")
    limit, T, eta = 1e-3, 10, 0.5
    trainer = make_trainer(be, corpus, model=model, batch=batch, seq_length=T, optimizer="sgd",
                           eta=eta, clip=0.0, clip_norm=limit, hidden=6)
    before = trainer.model.params.flat.copy()
    trainer.train_step()
    moved = numpy.linalg.norm(trainer.model.params.flat - before)
    assert moved == pytest.approx(eta * limit * T, rel=1e-6)


def test_clip_norm_leaves_a_small_gradient_alone(corpus):
    be = NumpyBackend("float64")
    kwargs = dict(seq_length=10, optimizer="sgd", eta=0.1, clip=0.0, hidden=6)
    free, capped = make_trainer(be, corpus, **kwargs), make_trainer(be, corpus, clip_norm=1e6,
                                                                     **kwargs)
    free.train_step()
    capped.train_step()
    numpy.testing.assert_array_equal(free.model.params.flat, capped.model.params.flat)


def test_clip_norm_option_reaches_the_run(run_charrnn, data_file, tmp_path):
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data_file, "--iterations", 3, "--out", out,
                       "--clip-norm", "2.5", "--clip", "0", *LEAN)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["clip_norm"] == 2.5 and config["clip"] == 0.0


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_bad_clip_norm_is_one_line(run_charrnn, data_file, tmp_path, value):
    out = tmp_path / "never"
    proc = run_charrnn("run", "--data", data_file, "--iterations", 3, "--out", out,
                       "--clip-norm", value)
    assert_one_line_error(proc, "'--clip-norm'")
    assert not out.exists()


# -- --lr-schedule ----------------------------------------------------------------------------


def test_schedule_shapes():
    cos = LearningRateSchedule(1.0, "cosine", final=0.1)
    assert cos.factor(0.0, 10) == pytest.approx(1.0)
    assert cos.factor(0.5, 10) == pytest.approx(0.55)
    assert cos.factor(1.0, 10) == pytest.approx(0.1)
    lin = LearningRateSchedule(1.0, "linear", final=0.0)
    assert [lin.factor(p, 10) for p in (0.0, 0.25, 1.0)] == pytest.approx([1.0, 0.75, 0.0])
    warm = LearningRateSchedule(1.0, "constant", warmup=10)
    assert [warm.factor(0.0, u) for u in (0, 5, 10, 50)] == pytest.approx([0.1, 0.55, 1.0, 1.0])


def test_no_schedule_means_no_callback():
    options = run_options()
    assert LearningRateSchedule.from_options(options) is None
    assert LearningRateSchedule.from_options({**options, "eta": 0.1, "warmup": 5}) is not None


def test_schedule_drives_the_optimizer_over_the_run(corpus):
    """By updates: after k of n updates the optimizer holds eta * factor(k / n)."""
    be = NumpyBackend("float64")
    schedule = LearningRateSchedule(0.2, "linear", final=0.1)
    seen = []

    class Spy(LearningRateSchedule):  # records the rate each update used
        def on_update_end(self, trainer):
            seen.append(trainer.optimizer.eta)
            super().on_update_end(trainer)

    spy = Spy(schedule.eta, schedule.shape, schedule.final)
    trainer = make_trainer(be, corpus, iterations=10, eta=0.2, optimizer="sgd", callbacks=[spy],
                           hidden=6)
    trainer.fit()
    assert seen == pytest.approx([0.2 * (1 - 0.9 * k / 10) for k in range(10)])
    assert trainer.optimizer.eta == pytest.approx(0.02)


def test_schedule_resumes_on_the_same_curve(run_charrnn, data_file, tmp_path):
    """A scheduled run that crashed and was resumed ends where the uninterrupted run ends."""
    from charrnn.assembly import build_trainer
    from charrnn.rundir import prepare_run_dir

    common = ("--data", data_file, "--optimizer", "adam", "--lr-schedule", "cosine",
              "--warmup", "3", "--hidden", "8", "--checkpoint-every", "5", "--iterations", "12",
              *LEAN)
    whole, crashed = tmp_path / "whole", tmp_path / "crashed"
    assert run_charrnn("run", "--out", whole, *common).returncode == 0
    trainer = build_trainer(run_options(*common), run_dir=prepare_run_dir(str(crashed)))
    trainer.callbacks.append(Crash(at=7))
    with pytest.raises(CallbackFailed, match="simulated crash"):
        trainer.fit()
    assert load_checkpoint(str(crashed / "latest.npz")).meta["update"] == 5
    proc = run_charrnn("run", "--resume", crashed, "--quiet")
    assert proc.returncode == 0, proc.stderr
    a, b = load_checkpoint(str(whole / "latest.npz")), load_checkpoint(str(crashed / "latest.npz"))
    assert a.meta["update"] == b.meta["update"] == 12
    for name in a.params:
        numpy.testing.assert_array_equal(a.params[name], b.params[name])
    assert a.optimizer["eta"] == b.optimizer["eta"] == pytest.approx(0.002 * 0.1)


# -- --preset ---------------------------------------------------------------------------------


def test_builtin_presets_come_through_the_entry_point():
    reg = get_registry()
    assert {"course", "quick"} <= set(reg.names("preset"))
    assert reg.items["preset"]["quick"].plugin.name == "presets"


def test_course_preset_is_the_defaults():
    defaults, course = run_options(), run_options("--preset", "course")
    assert course.pop("preset") == "course"
    defaults.pop("preset")
    # --eta and --sigma default to the optimizer's and model's own values, which course names.
    for key in ("eta", "sigma"):
        defaults.pop(key), course.pop(key)
    assert course == defaults


def test_quick_preset_and_what_is_typed_after_it():
    opts = run_options("--preset", "quick")
    assert (opts["model"], opts["layers"], opts["hidden"], opts["batch_size"]) == ("gru", 2, 256, 32)
    assert (opts["optimizer"], opts["eta"], opts["lr_schedule"]) == ("adam", 6e-3, "cosine")
    assert (opts["clip"], opts["clip_norm"], opts["dtype"]) == (0.0, 5.0, "float32")
    assert opts["time_limit"] == 120 and opts["val_frac"] == 0.1
    mine = run_options("--preset", "quick", "--eta", "1e-3", "--time-limit", "600")
    assert (mine["eta"], mine["time_limit"], mine["model"]) == (1e-3, 600, "gru")
    before = run_options("--eta", "1e-3", "--preset", "quick")
    assert before["eta"] == 1e-3  # the preset goes first wherever --preset is written


def test_preset_file_with_comments(run_charrnn, data_file, tmp_path):
    recipe = tmp_path / "recipe.txt"
    recipe.write_text("# a shared recipe\n--model gru --hidden 12   # small\n--batch-size 2\n"
                      "--optimizer rmsprop\n", encoding="utf-8")
    out = tmp_path / "run"
    proc = run_charrnn("run", "--preset", recipe, "--data", data_file, "--iterations", 4,
                       "--out", out, "--hidden", "10", *LEAN)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert (config["model"], config["hidden"], config["batch_size"], config["optimizer"]) == (
        "gru", 10, 2, "rmsprop")
    assert config["preset"] == str(recipe)


@pytest.mark.parametrize("content, parts", [
    (None, ("no preset named", "course", "quick", "file of charrnn run options")),
    ("--hidden zero\n", ("'--hidden'", "'zero' is not a valid integer", "(from --preset ")),
    ("--no-such-option 3\n", ("No such option '--no-such-option'", "(from --preset ")),
    ("--preset course\n", ("names another --preset",)),
    ("--model 'lstm\n", ("cannot read the preset file", "No closing quotation")),
])
def test_bad_presets_are_one_line(run_charrnn, data_file, tmp_path, content, parts):
    target = "nonesuch"
    if content is not None:
        target = tmp_path / "recipe.txt"
        target.write_text(content, encoding="utf-8")
    out = tmp_path / "never"
    proc = run_charrnn("run", "--preset", target, "--data", data_file, "--iterations", 3,
                       "--out", out)
    assert_one_line_error(proc, *parts)
    assert not out.exists()


def test_a_bad_value_typed_after_a_preset_is_not_blamed_on_it(run_charrnn, data_file, tmp_path):
    # quick sets --hidden too; the bad value here is the one typed on the command line.
    proc = run_charrnn("run", "--preset", "quick", "--hidden", "zero", "--data", data_file,
                       "--out", tmp_path / "never")
    assert_one_line_error(proc, "'--hidden'", "'zero' is not a valid integer")
    assert "(from --preset" not in proc.stderr


def test_two_presets_are_refused(run_charrnn, data_file, tmp_path):
    proc = run_charrnn("run", "--preset", "course", "--preset=quick", "--data", data_file)
    assert_one_line_error(proc, "--preset is given more than once")


def test_preset_run_trains_and_reports_what_it_used(run_charrnn, data_file, tmp_path):
    """quick as a user runs it, cut down to a few updates: the options it names are the
    ones the run used, and validation is on."""
    out = tmp_path / "run"
    proc = run_charrnn("run", "--preset", "quick", "--data", data_file, "--hidden", "16",
                       "--batch-size", "4", "--seq-length", "16", "--time-limit", "30",
                       "--iterations", "6", "--out", out, *LEAN)
    assert proc.returncode == 0, proc.stderr
    ckpt = load_checkpoint(str(out / "latest.npz"))
    assert ckpt.meta["update"] == 6
    assert ckpt.config["lr_schedule"] == "cosine" and ckpt.config["clip_norm"] == 5.0
    assert ckpt.meta["model"]["name"] == "gru" and ckpt.meta["dtype"] == "float32"
    assert math.isfinite(ckpt.meta["logs"]["val_loss"])
