"""Checkpoints: what ``latest.npz`` and ``best.npz`` hold, exact resume, and refusing bad input.

The command-line runs go through the installed ``charrnn`` script in a subprocess; the
trainer-level checks use :func:`charrnn.assembly.build_trainer` with the real callbacks.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import charrnn
import numpy
import pytest
from charrnn.errors import CallbackFailed
from charrnn.checkpoint import Checkpoint, header_checksum, load_checkpoint, save_checkpoint
from charrnn.files import atomic_write
from helpers import (
    LEAN,
    TEXT,
    VOCAB,
    Crash,
    assert_one_line_error,
    charrnn_inproc,
    make_trainer,
    read_samples,
    run_options,
)

#: The vanilla RNN's parameters, as its one-layer checkpoints name them.
PARAM_NAMES = ("W", "U", "V", "b", "c")

# -- helpers -----------------------------------------------------------------------------------







def digest(directory: Path) -> dict:
    """Every file in ``directory`` (names and contents), to prove nothing was touched."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir()) if p.is_file()}


def read_csv(path: Path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def expected_epoch_position(updates: int, n: int, seq_length: int):
    """Where the trainer stands after ``updates``: one epoch holds (n - 1) // seq_length updates
    (an update at p needs p + seq_length + 1 <= n), and the epoch counter starts at 0."""
    per_epoch = (n - 1) // seq_length
    return (updates - 1) // per_epoch, ((updates - 1) % per_epoch + 1) * seq_length


# -- fixtures ----------------------------------------------------------------------------------

@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished run (150 updates, checkpoints every 50), shared read-only by the tests."""
    root = tmp_path_factory.mktemp("trained")
    data = root / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    out = root / "run"
    proc = charrnn_inproc("run", "--data", data, "--hidden", 16, "--iterations", 150,
                       "--checkpoint-every", 50, "--log-every", 50, "--sample-every", 50,
                       "--sample-length", 20, "--out", out, *LEAN, cwd=root)
    assert proc.returncode == 0, proc.stderr
    return {"root": root, "data": data, "out": out}


# -- what a checkpoint holds -------------------------------------------------------------------

def test_run_writes_latest_and_best_without_pickle(trained):
    out = trained["out"]
    for name in ("latest.npz", "best.npz"):
        with numpy.load(out / name, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}  # reading every array: no pickle
        assert "meta" in arrays and arrays["meta"].dtype.kind == "U"
        assert all(a.dtype != object for a in arrays.values())
        assert {f"param.{p}" for p in PARAM_NAMES} | {"state.0"} <= set(arrays)


def test_load_checkpoint_returns_everything_a_resume_needs(trained):
    out, data = trained["out"], trained["data"]
    ckpt = load_checkpoint(str(out / "latest.npz"))
    K, m = len(VOCAB), 16
    shapes = {"b": (m,), "c": (K,), "U": (m, K), "V": (K, m), "W": (m, m)}
    assert {k: v.shape for k, v in ckpt.params.items()} == shapes
    assert all(isinstance(v, numpy.ndarray) and numpy.isfinite(v).all()
               for v in ckpt.params.values())
    # AdaGrad's accumulated squared gradients, on the host, by parameter like the parameters
    mem = ckpt.optimizer["mem"]
    assert {k: v.shape for k, v in mem.items()} == shapes
    assert all(isinstance(v, numpy.ndarray) and (v >= 0).all() for v in mem.values())
    assert all(v.max() > 0 for v in mem.values())
    assert ckpt.optimizer["eta"] == 0.1 and ckpt.optimizer["eps"] > 0
    (h,) = ckpt.state  # (layers, batch, m)
    assert h.shape == (1, 1, m) and numpy.isfinite(h).all()
    assert numpy.abs(h).max() > 0  # carried from the last update, not reset

    meta = ckpt.meta
    assert meta["update"] == 150
    epoch, position = expected_epoch_position(150, len(TEXT), 25)
    assert (meta["epoch"], meta["position"]) == (epoch, position)
    assert ckpt.vocab == VOCAB and meta["vocab"] == VOCAB
    cfg = ckpt.config
    assert cfg["hidden"] == 16 and cfg["seq_length"] == 25 and cfg["iterations"] == 150
    assert cfg["checkpoint_every"] == 50 and cfg["data"] == str(data)
    assert not {"out", "resume", "quiet"} & set(cfg)
    assert meta["backend"] == "numpy" and meta["dtype"] == "float64"
    assert meta["optimizer"] == "adagrad"
    assert meta["charrnn_version"] == charrnn.__version__
    assert meta["format_version"] == 4 and meta["batch_size"] == 1
    assert meta["model"] == {"name": "rnn", "options": {"hidden": 16, "layers": 1},
                             "shapes": {k: list(v) for k, v in shapes.items()}}
    # the smooth loss is the one logged for the same update
    last = read_csv(out / "metrics.csv")[-1]
    assert int(last["update"]) == 150
    assert f"{meta['smooth_loss']:.6f}" == last["smooth_loss"]
    assert meta["next_input_id"] == VOCAB.index(TEXT[position if position + 26 <= len(TEXT)
                                                       else 0])

    callbacks = meta["callbacks"]
    sampler = callbacks["sampler"]
    fresh = numpy.random.default_rng(0).bit_generator.state
    assert sampler["rng"]["bit_generator"] == fresh["bit_generator"]
    assert sampler["rng"] != fresh  # samples were drawn from it
    restored = numpy.random.default_rng()
    restored.bit_generator.state = sampler["rng"]  # a state a Generator accepts
    assert [s[0] for s in sampler["samples"]] == [0, 50, 100, 150]
    assert callbacks["checkpoints"]["best_update"] in (50, 100, 150)

    best = load_checkpoint(str(out / "best.npz"))
    assert best.meta["update"] == callbacks["checkpoints"]["best_update"]
    assert best.meta["callbacks"]["checkpoints"]["best"] == pytest.approx(best.meta["smooth_loss"])


# -- exact resume ------------------------------------------------------------------------------

@pytest.mark.parametrize("sample_every", [100, 150])
def test_resume_continues_bit_for_bit(run_charrnn, data_file, tmp_path, sample_every):
    """400 updates in one go against 200 then ``--resume --iterations 400``.

    With --sample-every 150 the first half ends between samples, so it takes an extra sample at
    update 200 that the uninterrupted run does not; the resumed samples must not notice.
    """
    common = ("--data", data_file, "--hidden", 16, "--checkpoint-every", 100, "--log-every", 1,
              "--sample-every", sample_every, "--sample-length", 40, "--val-frac", 0.1,
              "--val-every", 100, *LEAN)
    full, part = tmp_path / "full", tmp_path / "part"
    proc = run_charrnn("run", *common, "--iterations", 400, "--out", full)
    assert proc.returncode == 0, proc.stderr
    proc = run_charrnn("run", *common, "--iterations", 200, "--out", part)
    assert proc.returncode == 0, proc.stderr
    proc = run_charrnn("run", "--resume", part, "--iterations", 400, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "resuming at update 200" in proc.stdout
    assert "done: this session: 200 updates" in proc.stdout and "update 400 in all" in proc.stdout

    rows_full, rows_part = read_csv(full / "metrics.csv"), read_csv(part / "metrics.csv")
    assert [int(r["update"]) for r in rows_full] == list(range(1, 401))
    assert [int(r["update"]) for r in rows_part] == list(range(1, 401))
    for a, b in zip(rows_full[200:], rows_part[200:]):
        assert (a["update"], a["epoch"], a["loss"], a["smooth_loss"], a["val_loss"]) == \
               (b["update"], b["epoch"], b["loss"], b["smooth_loss"], b["val_loss"])

    a, b = load_checkpoint(str(full / "latest.npz")), load_checkpoint(str(part / "latest.npz"))
    for name in PARAM_NAMES:
        assert numpy.array_equal(a.params[name], b.params[name]), name
    for name in PARAM_NAMES:
        assert numpy.array_equal(a.optimizer["mem"][name], b.optimizer["mem"][name]), name
    assert numpy.array_equal(a.state[0], b.state[0])
    for key in ("update", "epoch", "position", "smooth_loss", "loss", "next_input_id"):
        assert a.meta[key] == b.meta[key], key
    assert a.meta["logs"]["val_loss"] == b.meta["logs"]["val_loss"]
    assert a.meta["callbacks"]["sampler"]["rng"] == b.meta["callbacks"]["sampler"]["rng"]

    samples_full, samples_part = read_samples(full / "samples.md"), read_samples(part / "samples.md")
    after = sorted(u for u in samples_full if u > 200)
    assert after and after[-1] == 400
    assert sorted(u for u in samples_part if u > 200) == after
    for u in after:
        assert samples_part[u] == samples_full[u], u




@pytest.fixture(scope="module")
def crashed_and_resumed(tmp_path_factory):
    """An uninterrupted run of 400 updates, and one that crashed at 250 (its latest.npz is
    from update 200, where a sample was also taken) and was resumed to 400."""
    from charrnn.assembly import build_trainer
    from charrnn.rundir import prepare_run_dir

    root = tmp_path_factory.mktemp("crash")
    data = root / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    common = ("--data", data, "--hidden", 16, "--checkpoint-every", 100, "--log-every", 1,
              "--sample-every", 100, "--sample-length", 40, "--iterations", 400, *LEAN)
    full, crashed = root / "full", root / "crashed"
    proc = charrnn_inproc("run", *common, "--out", full, cwd=root)
    assert proc.returncode == 0, proc.stderr
    trainer = build_trainer(run_options(*common), run_dir=prepare_run_dir(str(crashed)))
    trainer.callbacks.append(Crash(at=250))
    with pytest.raises(CallbackFailed, match="simulated crash"):
        trainer.fit()
    assert load_checkpoint(str(crashed / "latest.npz")).meta["update"] == 200
    proc = charrnn_inproc("run", "--resume", crashed, "--quiet", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "resuming at update 200" in proc.stdout
    return full, crashed


def test_resume_after_crash_trains_exactly(crashed_and_resumed):
    full, crashed = crashed_and_resumed
    rows_full, rows_crashed = read_csv(full / "metrics.csv"), read_csv(crashed / "metrics.csv")
    assert [int(r["update"]) for r in rows_crashed] == list(range(1, 401))
    assert [(r["loss"], r["smooth_loss"]) for r in rows_crashed] == \
           [(r["loss"], r["smooth_loss"]) for r in rows_full]
    a, b = load_checkpoint(str(full / "latest.npz")), load_checkpoint(str(crashed / "latest.npz"))
    for name in PARAM_NAMES:
        assert numpy.array_equal(a.params[name], b.params[name]), name


def test_resume_after_crash_samples_what_an_uninterrupted_run_does(crashed_and_resumed):
    full, crashed = crashed_and_resumed
    samples_full, samples_crashed = read_samples(full / "samples.md"), \
        read_samples(crashed / "samples.md")
    assert sorted(samples_crashed) == sorted(samples_full) == [0, 100, 200, 300, 400]
    assert samples_crashed == samples_full


def _short_options(path, iterations):
    return run_options("--data", path, "--hidden", 8, "--seq-length", 10, "--iterations",
                       iterations, "--sample-every", 1, "--sample-length", 5, "--log-every", 1,
                       "--seed", 3, "--sample-seed", 4, *LEAN)


@pytest.mark.parametrize("resume_at", [10, 13])
def test_trainer_checkpoint_restore_is_exact_across_epochs(tmp_path, resume_at):
    """Trainer.checkpoint() -> save_checkpoint -> load_checkpoint -> Trainer.restore, with a
    101-character text and sequences of 10, so an epoch is 10 updates and 35 updates wrap three
    times. Resuming at 10 resumes right before a wrap (the next update resets the hidden
    state); at 13, in the middle of an epoch with a carried hidden state."""
    from charrnn.assembly import build_trainer

    text = ("the cat sat on the mat. " * 5)[:101]
    path = tmp_path / "short.txt"
    path.write_text(text, encoding="utf-8")

    reference = build_trainer(_short_options(path, 35)).fit()
    assert (reference.update, reference.epoch, reference.stream.position) == (35, 3, 50)

    first = build_trainer(_short_options(path, resume_at)).fit()
    assert first.update == resume_at
    if resume_at == 10:
        assert (first.epoch, first.stream.position) == (0, 100)  # the next update wraps
    else:
        assert (first.epoch, first.stream.position) == (1, 30)
    save_checkpoint(str(tmp_path / "ck.npz"), first.checkpoint())
    ckpt = load_checkpoint(str(tmp_path / "ck.npz"))

    second = build_trainer(_short_options(path, 35), vocab=ckpt.vocab)
    second.restore(ckpt)
    assert (second.update, second.epoch, second.stream.position) == \
           (first.update, first.epoch, first.stream.position)
    assert numpy.array_equal(second.state[0], first.state[0])
    assert second.smooth_loss_value() == first.smooth_loss_value()
    second.fit()

    assert (second.update, second.epoch, second.stream.position) == (35, 3, 50)
    assert second.smooth_loss_value() == reference.smooth_loss_value()
    assert second.loss_value() == reference.loss_value()
    for name, value in reference.model.get_params().items():
        assert numpy.array_equal(second.model.get_params()[name], value), name
    assert numpy.array_equal(second.optimizer.state_dict()["mem"],
                             reference.optimizer.state_dict()["mem"])
    assert numpy.array_equal(second.backend.to_numpy(second.state[0]),
                             reference.backend.to_numpy(reference.state[0]))

    def rows(trainer):
        cb = next(c for c in trainer.callbacks if c.name == "lossplot")
        return [(r["update"], r["epoch"], r["loss"], r["smooth_loss"]) for r in cb.rows
                if r["update"] > resume_at]

    assert rows(second) == rows(reference) and len(rows(second)) == 35 - resume_at
    sampler = next(c for c in second.callbacks if c.name == "sampler")
    ref_sampler = next(c for c in reference.callbacks if c.name == "sampler")
    assert [s[0] for s in sampler.samples] == list(range(36))
    assert sampler.samples == ref_sampler.samples


# -- bad input ---------------------------------------------------------------------------------

def test_resume_missing_directory(run_charrnn, tmp_path):
    proc = run_charrnn("run", "--resume", tmp_path / "nowhere", "--iterations", 10)
    assert_one_line_error(proc, "--resume", "nowhere", "is not a run directory")
    assert not (tmp_path / "nowhere").exists()


def test_resume_directory_without_latest(run_charrnn, trained, tmp_path):
    run = tmp_path / "nolatest"
    run.mkdir()
    shutil.copy(trained["out"] / "best.npz", run / "best.npz")
    shutil.copy(trained["out"] / "config.json", run / "config.json")
    before = digest(run)
    proc = run_charrnn("run", "--resume", run, "--iterations", 300)
    assert_one_line_error(proc, "no latest.npz", "copy best.npz")
    assert digest(run) == before


def _copy_run(trained, dest: Path) -> Path:
    shutil.copytree(trained["out"], dest)
    return dest


@pytest.mark.parametrize("damage", ["truncated", "foreign", "not-npz"])
def test_resume_unreadable_latest(run_charrnn, trained, tmp_path, damage):
    original = digest(trained["out"])
    run = _copy_run(trained, tmp_path / damage)
    latest = run / "latest.npz"
    if damage == "truncated":
        size = latest.stat().st_size
        with open(latest, "r+b") as fh:
            fh.truncate(size // 2)
    elif damage == "foreign":
        rng = numpy.random.default_rng(1)
        latest.unlink()
        with open(latest, "wb") as fh:
            numpy.savez(fh, weights=rng.standard_normal((4, 4)), bias=rng.standard_normal(4))
    else:
        latest.write_text("these are not the arrays you are looking for\n")
    before = digest(run)
    proc = run_charrnn("run", "--resume", run, "--iterations", 300)
    assert_one_line_error(proc, str(latest), "not a readable charrnn checkpoint")
    assert digest(run) == before
    assert digest(trained["out"]) == original


def _edit_header(latest: Path, edit, recompute: bool) -> None:
    """Rewrite ``latest``'s JSON header through ``edit(meta)``; with ``recompute`` its
    header_checksum is redone, as an editor who knows the format would."""
    with numpy.load(latest, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(str(arrays["meta"]))
    edit(meta)
    if recompute:
        meta["header_checksum"] = header_checksum(meta)
    arrays["meta"] = numpy.array(json.dumps(meta))
    with open(latest, "wb") as fh:
        numpy.savez(fh, **arrays)


def test_resume_with_an_edited_header(run_charrnn, trained, tmp_path):
    """A checkpoint whose JSON header lost a field is refused in one line, not a KeyError (its
    header checksum redone, so that the field check is what refuses it)."""
    run = _copy_run(trained, tmp_path / "edited")
    latest = run / "latest.npz"
    _edit_header(latest, lambda meta: meta.pop("update"), recompute=True)
    before = digest(run)
    proc = run_charrnn("run", "--resume", run, "--iterations", 300)
    assert_one_line_error(proc, str(latest), "lacks update")
    assert digest(run) == before


def _set(key, value):
    return lambda meta: meta.__setitem__(key, value)


@pytest.mark.parametrize("edit", [
    _set("update", 1), _set("smooth_loss", 1.0), _set("dtype", "float16"),
    _set("format_version", 2), _set("format_version", 3),
    lambda meta: meta.__setitem__("vocab", meta["vocab"][1:2] + meta["vocab"][:1]
                                  + meta["vocab"][2:]),
    lambda meta: meta.pop("checksums"), lambda meta: meta.pop("header_checksum"),
], ids=["update", "smooth-loss", "dtype", "version-2", "version-3", "vocabulary-swapped",
        "checksums-removed", "header-checksum-removed"])
def test_every_byte_of_the_header_is_checked(run_charrnn, trained, tmp_path, edit):
    """An edit of any header field, version number and checksums included, is refused: the
    header's own checksum covers them all and no field switches it off."""
    run = _copy_run(trained, tmp_path / "edited")
    latest = run / "latest.npz"
    _edit_header(latest, edit, recompute=False)
    before = digest(run)
    for argv in (["run", "--resume", run, "--iterations", 300],
                 ["sample", "--checkpoint", latest, "--length", 10]):
        proc = run_charrnn(*argv)
        assert_one_line_error(proc, str(latest), "header")
    assert digest(run) == before


def test_a_checkpoint_of_another_run_is_refused(run_charrnn, trained, data_file, tmp_path):
    """A latest.npz copied in from another run (here: the same options, another run) would
    have the resume rewrite this run's config.json and drop its metrics rows."""
    run = _copy_run(trained, tmp_path / "mine")
    other = tmp_path / "other"
    proc = run_charrnn("run", "--data", data_file, "--hidden", 16, "--iterations", 150,
                       "--checkpoint-every", 50, "--sample-every", 50, "--log-every", 50,
                       "--no-plot", "--quiet", "--out", other)
    assert proc.returncode == 0, proc.stderr
    shutil.copyfile(other / "latest.npz", run / "latest.npz")
    before = digest(run)
    proc = run_charrnn("run", "--resume", run, "--iterations", 300)
    assert_one_line_error(proc, "belongs to another run (run id", "put back this run's own")
    assert digest(run) == before
    ours = json.loads((run / "config.json").read_text(encoding="utf-8"))["run_id"]
    assert load_checkpoint(str(trained["out"] / "latest.npz")).meta["run_id"] == ours


def test_resume_with_other_hidden_size(run_charrnn, trained):
    before = digest(trained["out"])
    proc = run_charrnn("run", "--resume", trained["out"], "--iterations", 300, "--hidden", 32)
    assert_one_line_error(proc, "--hidden", "16", "32")
    assert digest(trained["out"]) == before


def test_resume_with_other_data_file(run_charrnn, trained, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text(TEXT + "Zebra\u00e9\n", encoding="utf-8")  # 'Z' and 'é' are new
    before = digest(trained["out"])
    proc = run_charrnn("run", "--resume", trained["out"], "--iterations", 300, "--data", other)
    assert_one_line_error(proc, "--data")
    assert digest(trained["out"]) == before


def test_resume_when_the_data_gained_a_character(run_charrnn, data_file, tmp_path):
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data_file, "--hidden", 8, "--iterations", 20,
                       "--out", out, *LEAN)
    assert proc.returncode == 0, proc.stderr
    before = digest(out)
    data_file.write_text(TEXT + "Q\n", encoding="utf-8")  # the same file, a new character
    proc = run_charrnn("run", "--resume", out, "--iterations", 40)
    assert_one_line_error(proc, str(data_file), "not in the checkpoint's vocabulary", "'Q'")
    assert digest(out) == before


@pytest.mark.parametrize("iterations", [150, 100])
def test_resume_with_no_updates_left(run_charrnn, trained, iterations):
    before = digest(trained["out"])
    proc = run_charrnn("run", "--resume", trained["out"], "--iterations", iterations)
    assert_one_line_error(proc, "already done 150 updates", "--iterations")
    assert digest(trained["out"]) == before


def test_resume_without_iterations_when_the_run_is_finished(run_charrnn, trained):
    before = digest(trained["out"])
    proc = run_charrnn("run", "--resume", trained["out"])
    assert_one_line_error(proc, "already done 150 updates")
    assert digest(trained["out"]) == before


def test_resume_with_another_out(run_charrnn, trained, tmp_path):
    before = digest(trained["out"])
    proc = run_charrnn("run", "--resume", trained["out"], "--iterations", 300,
                       "--out", tmp_path / "elsewhere")
    assert_one_line_error(proc, "--out")
    assert digest(trained["out"]) == before and not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("value", [0, -1])
def test_checkpoint_every_must_be_positive(run_charrnn, data_file, tmp_path, value):
    proc = run_charrnn("run", "--data", data_file, "--iterations", 5, "--checkpoint-every",
                       value, "--out", tmp_path / "never")
    assert_one_line_error(proc, "--checkpoint-every", f"{value} is not in the range x>=1")
    assert not (tmp_path / "never").exists()


def test_out_that_cannot_be_written(run_charrnn, data_file, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes anywhere: use a path below a file
            afile = tmp_path / "afile"
            afile.write_text("x")
            out = afile / "run"
        else:
            out = locked / "run"
        proc = run_charrnn("run", "--data", data_file, "--iterations", 5, "--hidden", 4,
                           "--out", out, *LEAN)
        assert_one_line_error(proc, "cannot write to run directory", str(out), "--out")
        assert not out.exists()
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o700)


# -- portability -------------------------------------------------------------------------------

@pytest.mark.parametrize("written, resumed", [("float32", "float64"), ("float64", "float32")])
def test_resume_in_another_dtype(run_charrnn, data_file, tmp_path, written, resumed):
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data_file, "--hidden", 16, "--iterations", 100,
                       "--checkpoint-every", 50, "--dtype", written, "--out", out, *LEAN)
    assert proc.returncode == 0, proc.stderr
    before = load_checkpoint(str(out / "latest.npz"))
    assert before.meta["dtype"] == written
    assert before.params["W"].dtype == numpy.dtype(written)

    proc = run_charrnn("run", "--resume", out, "--iterations", 160, "--dtype", resumed)
    assert proc.returncode == 0, proc.stderr
    assert "resuming at update 100" in proc.stdout and f", {resumed};" in proc.stdout
    after = load_checkpoint(str(out / "latest.npz"))
    assert after.meta["update"] == 160 and after.meta["dtype"] == resumed
    assert after.config["dtype"] == resumed
    assert all(v.dtype == numpy.dtype(resumed) and numpy.isfinite(v).all()
               for v in after.params.values())
    assert all(v.dtype == numpy.dtype(resumed) for v in after.optimizer["mem"].values())
    assert not numpy.array_equal(after.params["W"], before.params["W"].astype(resumed))
    # it trained on from where it was, not from scratch
    assert after.meta["smooth_loss"] < before.meta["smooth_loss"]
    rows = read_csv(out / "metrics.csv")
    assert [int(r["update"]) for r in rows][-1] == 160


def test_resume_keeps_the_saved_dtype_by_default(run_charrnn, data_file, tmp_path):
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data_file, "--hidden", 8, "--iterations", 30,
                       "--dtype", "float32", "--out", out, *LEAN)
    assert proc.returncode == 0, proc.stderr
    proc = run_charrnn("run", "--resume", out, "--iterations", 40)
    assert proc.returncode == 0, proc.stderr
    after = load_checkpoint(str(out / "latest.npz"))
    assert after.meta["update"] == 40 and after.meta["dtype"] == "float32"
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"


# -- atomic saves ------------------------------------------------------------------------------

def test_save_checkpoint_twice_leaves_only_the_file(tmp_path, data_file):
    from charrnn.assembly import build_trainer

    target = tmp_path / "ckpts"
    target.mkdir()
    trainer = build_trainer(run_options("--data", data_file, "--hidden", 8, "--iterations", 3,
                                        *LEAN))
    trainer.fit()
    path = str(target / "latest.npz")
    save_checkpoint(path, trainer.checkpoint())
    trainer.iterations = 7
    trainer.fit()
    save_checkpoint(path, trainer.checkpoint())
    assert sorted(os.listdir(target)) == ["latest.npz"]
    loaded = load_checkpoint(path)
    assert loaded.meta["update"] == 7  # the second save replaced the first
    for name, value in trainer.model.get_params().items():
        assert numpy.array_equal(loaded.params[name], value)


def test_interrupted_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "latest.npz"
    shapes = {"W": [2, 2], "U": [2, 2], "V": [2, 2], "b": [2], "c": [2]}
    good = Checkpoint(meta={"update": 1, "epoch": 0, "position": 2, "smooth_loss": 1.0,
                            "vocab": ["a", "b"], "config": {"hidden": 2},
                            "model": {"name": "rnn", "options": {"hidden": 2, "layers": 1},
                                      "shapes": shapes}},
                      params={"b": numpy.zeros(2), "c": numpy.zeros(2), "U": numpy.ones((2, 2)),
                              "V": numpy.ones((2, 2)), "W": numpy.eye(2)},
                      optimizer={"eta": 0.1, "mem": numpy.arange(14.0)},
                      state=[numpy.zeros((1, 1, 2))])
    save_checkpoint(str(path), good)
    before = path.read_bytes()

    def write_half_then_fail(fh):
        fh.write(before[: len(before) // 2])
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(str(path), write_half_then_fail)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["latest.npz"]
    assert numpy.array_equal(load_checkpoint(str(path)).optimizer["mem"], numpy.arange(14.0))


# -- resuming from another working directory ---------------------------------------------------

def test_resume_from_another_directory_uses_the_runs_own_text(run_charrnn, tmp_path):
    inner = tmp_path / "project"
    inner.mkdir()
    (inner / "text.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "text.txt").write_text("the lazy dog.\n" * 40, encoding="utf-8")  # another text
    common = ("--data", "text.txt", "--hidden", 8, "--checkpoint-every", 50, *LEAN)
    proc = run_charrnn("run", *common, "--iterations", 100, "--out", "ref", cwd=inner)
    assert proc.returncode == 0, proc.stderr
    proc = run_charrnn("run", *common, "--iterations", 50, "--out", "run", cwd=inner)
    assert proc.returncode == 0, proc.stderr
    proc = run_charrnn("run", "--resume", Path("project") / "run", "--iterations", 100,
                       cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ref = load_checkpoint(str(inner / "ref" / "latest.npz"))
    resumed = load_checkpoint(str(inner / "run" / "latest.npz"))
    assert numpy.array_equal(ref.params["W"], resumed.params["W"])


def test_best_npz_left_behind_by_a_kill_is_repaired_at_the_next_start(data_file, tmp_path):
    """latest.npz is written before best.npz; a kill between the two leaves best.npz one
    checkpoint old. The next start that reads the run (here ``charrnn report``) writes it again
    from latest.npz, which records itself as the best."""
    common = ("--data", data_file, "--hidden", 16, "--checkpoint-every", 20, "--no-gradcheck",
              "--no-plot", "--quiet")
    run, early = tmp_path / "run", tmp_path / "early"
    for out, iterations in ((run, 40), (early, 20)):
        proc = charrnn_inproc("run", *common, "--iterations", iterations, "--out", out,
                              cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    latest = load_checkpoint(str(run / "latest.npz"))
    assert latest.meta["update"] == 40
    assert load_checkpoint(str(run / "best.npz")).meta["update"] == 40  # the loss fell
    shutil.copyfile(early / "best.npz", run / "best.npz")  # as a kill between the writes leaves it

    proc = charrnn_inproc("report", run, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "best.npz repaired: it was at update 20" in proc.stdout
    best = load_checkpoint(str(run / "best.npz"))
    assert best.meta["update"] == 40
    for name, value in latest.params.items():
        assert numpy.array_equal(best.params[name], value), name
    proc = charrnn_inproc("report", run, cwd=tmp_path)  # nothing left to repair
    assert "repaired" not in proc.stdout


def test_best_is_judged_by_the_validation_loss_of_its_own_weights(data_file, tmp_path):
    """With --val-every 70 and --checkpoint-every 100, the checkpoint at 100 falls between
    validations: it measures the loss of the weights it saves rather than taking the one
    measured at 70, and best.npz records that loss."""
    from charrnn.callbacks import Callback
    from charrnn.assembly import build_trainer

    seen = {}

    class Probe(Callback):
        name = "probe"
        order = 1000  # after the checkpoints

        def on_update_end(self, trainer) -> None:
            if trainer.update == 100:
                best = next(c for c in trainer.callbacks if c.name == "checkpoints")
                seen.update(best=best.best, best_update=best.best_update,
                            true=trainer.validation_loss(),
                            val_update=trainer.logs.get("val_update"))

    options = run_options("--data", data_file, "--hidden", 16, "--iterations", 150,
                          "--val-frac", 0.2, "--val-every", 70, "--checkpoint-every", 100, *LEAN)
    trainer = build_trainer(options)
    trainer.run_dir = str(tmp_path)
    trainer.callbacks.append(Probe())
    trainer.fit()
    assert seen["best_update"] == 100 and seen["val_update"] == 100
    assert seen["best"] == pytest.approx(seen["true"], rel=1e-12)
    best = load_checkpoint(str(tmp_path / "best.npz"))
    rebuilt = build_trainer({**best.config, "quiet": True}, vocab=best.vocab)
    rebuilt.restore(best)
    assert rebuilt.validation_loss() == pytest.approx(best.meta["callbacks"]["checkpoints"]["best"],
                                                      rel=1e-12)


#: A value each kind of header check refuses.
WRONG = {"count": -1, "number": "1.5", "text": 5, "mapping": [], "check_vocab": ["ab"],
         "check_run_id": "RUN", "check_next_input_id": 10**6, "check_pcg64": {},
         "check_logs": [], "check_callbacks": {"sampler": 3}, "check_model": {"name": "rnn"}}


def test_the_writer_and_the_loader_share_one_description_of_the_header():
    """``Trainer.checkpoint`` writes a :class:`CheckpointMeta`, and the loader checks every
    field that type declares, each by the check it names: no field is written unchecked, and
    none is checked that is never written."""
    import dataclasses

    from charrnn.backends.numpy_backend import NumpyBackend
    from charrnn.checkpoint.messages import Refusal
    from charrnn.checkpoint.schema import CheckpointMeta, Header
    from charrnn.data import Corpus

    trainer = make_trainer(NumpyBackend(), Corpus.from_text(TEXT, "test"), iterations=3)
    trainer.fit()
    meta = trainer.checkpoint().meta
    specs = dataclasses.fields(CheckpointMeta)
    assert list(meta) == [f.name for f in specs]
    assert {f.metadata["check"] for f in specs} <= set(WRONG)
    Header(dict(meta), Refusal("x.npz")).check_common()  # what was written passes
    for spec in specs:
        bad = {**meta, spec.name: WRONG[spec.metadata["check"]]}
        header = Header(bad, Refusal("x.npz"))
        with pytest.raises(charrnn.CharrnnError, match=rf"\b{spec.name}\b"):
            header.check_common()
            header.check_model()
