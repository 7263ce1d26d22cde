"""Checkpoints from anyone: whatever a ``.npz`` holds, loading it either works or fails in one line.

Two real runs (an RNN with AdaGrad at batch 1, a two-layer LSTM with Adam at batch 2, held-out
text and dropout) give the files the properties damage: header fields replaced with arbitrary
JSON or deleted, arrays replaced, retyped, reshaped, dropped or added (with the checksums redone
or not), and the file's bytes flipped, truncated, inserted and overwritten. For every case
:func:`charrnn.checkpoint.load_checkpoint` returns a checkpoint or raises
:class:`~charrnn.errors.CharrnnError` with one line naming the file, and never the catch-all
message it keeps for a case its checks missed. Files that still load are resumed from the
command line, which must end with exit code 0 or one ``Error:`` line, never a traceback.

The cases are drawn from a fixed seed (``derandomize=True``), so CI runs the same ones every time.
"""
from __future__ import annotations

import copy
import io
import json
import math
import os
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import numpy
import pytest
from charrnn.checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    array_checksum,
    header_checksum,
    load_checkpoint,
    save_checkpoint,
    validate_against_model,
)
from charrnn.errors import CharrnnError
from charrnn.cli import main
from helpers import LEAN, TEXT, call_in_process, examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: Written to the header as lists nested 5,000 deep (too deep to build here and copy).
DEEP = "\0deep\0"
#: The message load_checkpoint keeps for an exception its checks did not foresee.
UNFORESEEN = "did not expect"

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

#: The two runs: (name, charrnn run options).
RUNS = {
    "rnn": ("--hidden", 8, "--seq-length", 10, "--iterations", 6, "--checkpoint-every", 3),
    "lstm": ("--model", "lstm", "--layers", 2, "--hidden", 6, "--optimizer", "adam",
             "--batch-size", 2, "--dropout", 0.2, "--seq-length", 8, "--iterations", 6,
             "--checkpoint-every", 3, "--val-frac", 0.2, "--val-every", 3),
}




def read_arrays(path) -> dict:
    with numpy.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def write_npz(path, meta, arrays: dict, resign: bool = False) -> None:
    """``arrays`` and the header ``meta`` as a .npz (object arrays pickled, as numpy writes
    them); with ``resign`` the header's checksums are redone for the arrays as they are. A
    header that has a ``header_checksum`` gets it redone for the header as it is, as an editor
    who knows the format would: what is fuzzed then is the checks of the fields themselves (a
    header edited without it is refused by the checksum, see test_checkpoints.py)."""
    arrays = {k: v for k, v in arrays.items() if k != "meta"}
    if resign and isinstance(meta, dict):
        meta = {**meta, "checksums": {k: array_checksum(v) for k, v in arrays.items()
                                      if v.dtype != object}}
    if isinstance(meta, dict) and "header_checksum" in meta:
        try:
            meta = {**meta, "header_checksum": header_checksum(meta)}
        except (TypeError, ValueError, RecursionError):
            pass  # a header JSON cannot even hash: it is refused before the checksum matters
    text = json.dumps(meta).replace(json.dumps(DEEP), "[" * 5000 + "]" * 5000)
    with open(path, "wb") as fh:
        numpy.savez(fh, meta=numpy.array(text), **arrays)


def outcome(path):
    """The checkpoint at ``path``, or None after a proper refusal; anything else fails."""
    try:
        ckpt = load_checkpoint(str(path))
    except CharrnnError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message, message
        assert str(path) in message, message
        assert UNFORESEEN not in message, message
        assert len(message) < 600, message
        return None
    assert isinstance(ckpt, Checkpoint)
    return ckpt


def check_loaded(ckpt: Checkpoint) -> None:
    """What a loaded checkpoint promises, whatever file it came from."""
    meta = ckpt.meta
    shapes = {k: tuple(v) for k, v in meta["model"]["shapes"].items()}
    assert set(ckpt.params) == set(shapes)
    arrays = list(ckpt.params.values()) + list(ckpt.state)
    for key, value in ckpt.optimizer.items():
        if isinstance(value, dict):
            assert {k: v.shape for k, v in value.items()} == shapes, key
            arrays += list(value.values())
        elif isinstance(value, numpy.ndarray):
            arrays.append(value)
        else:
            assert value is None or isinstance(value, (str, bool, int, float)), key
    for name, value in ckpt.params.items():
        assert value.shape == shapes[name]
    for array in arrays:
        assert array.dtype in (numpy.float32, numpy.float64) and array.dtype.isnative
        assert numpy.isfinite(array).all()
    for key in ("update", "epoch", "position"):
        assert type(meta[key]) is int and 0 <= meta[key] < 2**63
    assert math.isfinite(meta["smooth_loss"])
    vocab = meta["vocab"]
    assert vocab and len(set(vocab)) == len(vocab) and all(len(c) == 1 for c in vocab)
    assert isinstance(ckpt.config, dict) and isinstance(ckpt.model_options, dict)
    for state in ckpt.state:
        assert state.ndim >= 2 and state.shape[1] == meta.get("batch_size", 1)


# -- the runs ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Each run's directory, its latest.npz's header and arrays, and the model it holds."""
    from charrnn.assembly import model_from_checkpoint
    from charrnn.registry import get_registry

    root = tmp_path_factory.mktemp("fuzz")
    data = root / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    numpy_backend = get_registry().get("backend", "numpy")(dtype="float64")
    out = Runs()
    for name, options in RUNS.items():
        run = root / name
        proc = _run_in_process(["run", "--data", data, *options, "--sample-every", 3,
                                "--sample-length", 5, "--out", run, *LEAN])
        assert proc == 0
        latest = run / "latest.npz"
        arrays = read_arrays(latest)
        meta = json.loads(str(arrays.pop("meta")))
        ckpt = load_checkpoint(str(latest))
        out[name] = {"run": run, "latest": latest, "meta": meta, "arrays": arrays,
                     "bytes": latest.read_bytes(), "paths": json_paths(meta),
                     "model": model_from_checkpoint(ckpt, numpy_backend), "ckpt": ckpt}
    out["work"] = root / "work"
    out["work"].mkdir()
    return out


class Runs(dict):
    """The module's runs, shown briefly in hypothesis's reports."""

    def __repr__(self) -> str:
        return f"<runs {sorted(self)}>"


def _run_in_process(argv) -> int:
    try:
        main([str(a) for a in argv])
    except SystemExit as exc:
        return exc.code
    return 0


def json_paths(value, prefix=()):
    """Every path (a tuple of keys and indices) into a JSON value, itself included."""
    paths = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            paths += json_paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value[:6]):
            paths += json_paths(item, prefix + (i,))
    return paths


def test_the_runs_write_what_is_fuzzed(base):
    """The files hold what the fuzzing is meant to reach: format 3 with checksums, optimizer
    arrays by parameter, two state arrays for the LSTM, a dropout stream, logs, callbacks."""
    rnn, lstm = base["rnn"], base["lstm"]
    for run in (rnn, lstm):
        assert run["meta"]["format_version"] == FORMAT_VERSION == 4
        assert set(run["meta"]["checksums"]) == set(run["arrays"])
        check_loaded(run["ckpt"])
        validate_against_model(run["ckpt"], run["model"])
        validate_against_model(run["ckpt"], type(run["model"]))
    assert set(rnn["ckpt"].optimizer) == {"eta", "eps", "mem"}
    assert {"m", "v", "t", "beta1"} <= set(lstm["ckpt"].optimizer)
    assert len(lstm["ckpt"].state) == 2 and lstm["ckpt"].state[0].shape == (2, 2, 6)
    assert "val_loss" in lstm["meta"]["logs"]
    assert {"sampler", "checkpoints"} <= set(lstm["meta"]["callbacks"])
    assert lstm["meta"]["dropout_rng"]["bit_generator"] == "PCG64"


# -- what the header and the arrays are replaced with ------------------------------------------

def _deep(levels: int):
    value: object = 0
    for _ in range(levels):
        value = [value]
    return value


NASTY = [None, True, False, 0, -1, 1, 2, -0.0, 0.5, 1e308, -1e308, 2**31, 2**53 + 1, 2**63,
         2**64, 2**128, -2**63 - 1, 10**30, 10**400, float("nan"), float("inf"), float("-inf"),
         "", "abc", "\n", "\ud800", "W", "a\u0301", "0", [], [0], [-1], [2**40, 2**40], [1, 2.5],
         ["a", "a"], ["ab"], {}, {"": None}, {"state": 1}, _deep(40), DEEP,
         {"bit_generator": "PCG64", "state": {"state": -1, "inc": 1}, "has_uint32": 0,
          "uinteger": 0}]

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=8) | st.sampled_from(NASTY)


def mutate_json(meta, path, action, value):
    """``meta`` (a copy) with the value at ``path`` replaced by ``value`` or deleted."""
    meta = copy.deepcopy(meta)
    if not path:
        return value if action == "replace" else {}
    parent = meta
    for key in path[:-1]:
        try:
            parent = parent[key]
        except (KeyError, IndexError, TypeError):
            return meta  # an earlier change removed the way there
    key = path[-1]
    try:
        if action == "delete":
            del parent[key]
        else:
            parent[key] = value
    except (KeyError, IndexError, TypeError):
        pass
    return meta


def _retype(array, dtype):
    try:
        return array.astype(dtype)
    except (TypeError, ValueError):
        return array


ARRAY_CHANGES = {
    "drop": lambda a: None,
    "nan": lambda a: _poke(a, numpy.nan),
    "inf": lambda a: _poke(a, -numpy.inf),
    "nudge": lambda a: _poke(a, 0.125),
    "float16": lambda a: _retype(a, numpy.float16),
    "float32": lambda a: _retype(a, numpy.float32),
    "big-endian": lambda a: _retype(a, ">f8"),
    "int": lambda a: _retype(a, numpy.int64),
    "complex": lambda a: _retype(a, numpy.complex128),
    "bool": lambda a: _retype(a, bool),
    "text": lambda a: numpy.array(["x"] * max(1, min(a.size, 3))),
    "object": lambda a: numpy.array([1, "x", None], dtype=object),
    "flatten": lambda a: a.reshape(-1),
    "extra-axis": lambda a: a[None],
    "scalar": lambda a: numpy.array(1.0),
    "empty": lambda a: numpy.zeros((0,) + a.shape[1:]),
    "shorter": lambda a: a[..., :-1] if a.ndim else a,
    "fortran": lambda a: numpy.asfortranarray(a),
    "structured": lambda a: numpy.zeros(2, dtype=[("x", "<f8"), ("y", "<i4")]),
}
EXTRA_NAMES = ["param.Q", "optim.mem:Q", "optim.mem", "optim.m", "optim.v:W", "optim.:W",
               "state.9", "state.01", "state.-1", "hidden", "junk", "param.", "meta2"]


def _poke(array, value):
    if not array.size or array.dtype.kind not in "biuf":
        return array
    out = numpy.array(array, dtype=numpy.float64 if array.dtype.kind != "f" else array.dtype)
    out.reshape(-1)[out.size // 2] = value
    return out


@st.composite
def damaged(draw, base):
    """A damaged copy of one run's latest.npz: (header, arrays, resign)."""
    run = base[draw(st.sampled_from(["rnn", "lstm"]))]
    meta, arrays = run["meta"], dict(run["arrays"])
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(run["paths"]))
        action = draw(st.sampled_from(["replace", "replace", "delete"]))
        meta = mutate_json(meta, path, action, draw(JSON) if action == "replace" else None)
    for _ in range(draw(st.integers(0, 2))):
        if draw(st.booleans()):
            name = draw(st.sampled_from(sorted(arrays) or ["param.W"]))
            if name in arrays:
                changed = ARRAY_CHANGES[draw(st.sampled_from(sorted(ARRAY_CHANGES)))](arrays[name])
                if changed is None:
                    del arrays[name]
                else:
                    arrays[name] = changed
        else:
            name = draw(st.sampled_from(EXTRA_NAMES))
            source = draw(st.sampled_from(sorted(run["arrays"])))
            arrays[name] = run["arrays"][source]
    return run, meta, arrays, draw(st.booleans())


# -- the properties ------------------------------------------------------------------------------

@settings(FUZZ, max_examples=examples(600))
@given(data=st.data())
def test_damaged_headers_and_arrays_load_or_fail_in_one_line(base, data):
    run, meta, arrays, resign = data.draw(damaged(base))
    path = base["work"] / "case.npz"
    write_npz(path, meta, arrays, resign=resign)
    ckpt = outcome(path)
    if ckpt is not None:
        check_loaded(ckpt)
        for model in (run["model"], type(run["model"])):
            try:
                validate_against_model(ckpt, model)
            except CharrnnError as exc:
                assert "\n" not in str(exc) and UNFORESEEN not in str(exc)


@st.composite
def corruption(draw, size: int, hot: list):
    """Up to four byte-level changes of a file of ``size`` bytes; positions are drawn anywhere,
    or near the zip and .npy headers (``hot``)."""
    changes = []
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.one_of(st.integers(0, size - 1),
                               st.sampled_from(hot).flatmap(
                                   lambda o: st.integers(o, min(size - 1, o + 200)))))
        kind = draw(st.sampled_from(["flip", "flip", "truncate", "insert", "overwrite",
                                     "delete"]))
        blob = draw(st.binary(min_size=1, max_size=24))
        changes.append((kind, where, draw(st.integers(0, 7)), blob))
    return changes


def corrupt(raw: bytes, changes) -> bytes:
    out = bytearray(raw)
    for kind, where, bit, blob in changes:
        where = min(where, max(len(out) - 1, 0))
        if kind == "flip" and out:
            out[where] ^= 1 << bit
        elif kind == "truncate":
            del out[where:]
        elif kind == "insert":
            out[where:where] = blob
        elif kind == "overwrite":
            out[where : where + len(blob)] = blob
        elif kind == "delete":
            del out[where : where + len(blob)]
    return bytes(out)


def hot_offsets(raw: bytes) -> list:
    """Where the zip's local headers, the .npy headers and the central directory start."""
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        infos = zf.infolist()
        offsets = [i.header_offset for i in infos]
        offsets += [i.header_offset + 30 + len(i.filename) for i in infos]
        offsets.append(zf.start_dir if hasattr(zf, "start_dir") else len(raw) - 200)
    offsets.append(max(0, len(raw) - 22))  # the end-of-central-directory record
    return sorted(set(min(o, len(raw) - 1) for o in offsets))


@settings(FUZZ, max_examples=examples(400))
@given(data=st.data())
def test_corrupted_bytes_load_or_fail_in_one_line(base, data):
    run = base[data.draw(st.sampled_from(["rnn", "lstm"]))]
    raw = run["bytes"]
    changes = data.draw(corruption(len(raw), hot_offsets(raw)))
    path = base["work"] / "bytes.npz"
    path.write_bytes(corrupt(raw, changes))
    ckpt = outcome(path)
    if ckpt is not None:
        check_loaded(ckpt)


#: Header fields the trainer and the launcher read on resume, and values that pass the loader's
#: checks of their type (or that it leaves to them): what reaches trainer.restore.
RESUMABLE = st.sampled_from([
    ("position",), ("epoch",), ("update",), ("next_input_id",), ("batch_size",),
    ("train_seconds",), ("smooth_loss",), ("loss",), ("config", "hidden"), ("config", "layers"),
    ("config", "seq_length"), ("config", "batch_size"), ("config", "iterations"),
    ("config", "optimizer"), ("config", "model"), ("config", "eta"), ("config", "dtype"),
    ("config", "data"), ("config", "time_limit"), ("config", "sample_every"),
    ("config", "checkpoint_every"), ("config",), ("model", "options", "hidden"),
    ("model", "name"), ("optimizer",), ("optimizer_state", "eta"), ("optimizer_state", "eps"),
    ("optimizer_state", "t"), ("optimizer_state", "beta1"), ("callbacks", "sampler", "rng"),
    ("callbacks", "sampler", "samples"), ("callbacks", "sampler"),
    ("callbacks", "checkpoints", "best"), ("callbacks", "checkpoints", "best_update"),
    ("callbacks", "lossplot", "val_points"), ("callbacks", "lossplot", "initial"),
    ("logs", "val_loss"), ("logs", "val_update"), ("logs", "gradcheck"), ("dropout_rng",),
    ("dtype",), ("backend",), ("vocab",),
])
PLAUSIBLE = st.one_of(st.integers(-3, 400), st.integers(), st.floats(-1e3, 1e3),
                      st.sampled_from([None, True, "", "rnn", "lstm", "adam", "sgd", "float16",
                                       "float32", "nowhere.txt", [], {}, [[1, 2]], [[0, 1, "x"]],
                                       {"rng": None}, 2**40, 10**30, 0.0, 1e-300])
                      | JSON)


@settings(FUZZ, max_examples=examples(80))
@given(data=st.data())
def test_resuming_a_checkpoint_that_loads_never_shows_a_traceback(base, data, capsys):
    run = base[data.draw(st.sampled_from(["rnn", "lstm"]))]
    meta = run["meta"]
    for _ in range(data.draw(st.integers(1, 2))):
        path = data.draw(RESUMABLE)
        action = data.draw(st.sampled_from(["replace", "replace", "replace", "delete"]))
        meta = mutate_json(meta, path, action, data.draw(PLAUSIBLE))
    target = base["work"] / "resume"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(run["run"], target)
    write_npz(target / "latest.npz", meta, run["arrays"], resign=True)
    if outcome(target / "latest.npz") is None:
        return
    code, out, err = call_in_process(capsys, "run", "--resume", target, "--iterations",
                          run["meta"]["update"] + 2, "--quiet")
    assert "Traceback" not in err and "Traceback" not in out, err
    if code != 0:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), err


# -- the cases the issue names -------------------------------------------------------------------

def _copy(base, name="rnn"):
    run = base[name]
    return copy.deepcopy(run["meta"]), {k: v.copy() for k, v in run["arrays"].items()}


def one_line(path, *parts) -> str:
    with pytest.raises(CharrnnError) as info:
        load_checkpoint(str(path))
    message = str(info.value)
    assert "\n" not in message and str(path) in message and UNFORESEEN not in message, message
    for part in parts:
        assert part in message, message
    return message


def test_an_array_that_does_not_match_its_checksum_is_refused_by_name(base, tmp_path):
    meta, arrays = _copy(base)
    arrays["param.W"][0, 0] += 1e-3  # a plausible value: only the checksum tells
    write_npz(tmp_path / "edited.npz", meta, arrays)
    one_line(tmp_path / "edited.npz", "'param.W'", "checksum")
    meta, arrays = _copy(base, "lstm")
    arrays["optim.m:Wh2"] = arrays["optim.m:Wh2"][::-1].copy()
    write_npz(tmp_path / "edited.npz", meta, arrays)
    one_line(tmp_path / "edited.npz", "'optim.m:Wh2'", "checksum")


def test_a_checksum_missing_from_a_format_3_file_is_refused(base, tmp_path):
    meta, arrays = _copy(base)
    del meta["checksums"]["state.0"]
    write_npz(tmp_path / "a.npz", meta, arrays)
    one_line(tmp_path / "a.npz", "checksums.state.0")
    del meta["checksums"]
    write_npz(tmp_path / "b.npz", meta, arrays)
    one_line(tmp_path / "b.npz", "'checksums'")


@pytest.mark.parametrize("name", ["rnn", "lstm"])
def test_format_2_files_without_checksums_still_load(base, tmp_path, name):
    """What charrnn 0.2.0 and 0.3.0 wrote: format 2, no checksums, the same arrays."""
    meta, arrays = _copy(base, name)
    meta["format_version"] = 2
    meta["charrnn_version"] = "0.3.0"
    for key in ("checksums", "header_checksum", "run_id"):
        del meta[key]
    write_npz(tmp_path / "v2.npz", meta, arrays)
    ckpt = load_checkpoint(str(tmp_path / "v2.npz"))
    check_loaded(ckpt)
    for key, value in base[name]["ckpt"].params.items():
        assert numpy.array_equal(ckpt.params[key], value), key
    for a, b in zip(ckpt.state, base[name]["ckpt"].state):
        assert numpy.array_equal(a, b)
    validate_against_model(ckpt, base[name]["model"])
    # and what is saved from it is the current format, with checksums
    save_checkpoint(str(tmp_path / "v4.npz"), ckpt)
    again = load_checkpoint(str(tmp_path / "v4.npz"))
    assert again.meta["format_version"] == 4 and "param.W" in json.dumps(again.meta["checksums"])
    assert again.meta["header_checksum"].startswith("sha256:")


def test_a_newer_format_is_refused_with_what_to_do(base, tmp_path):
    meta, arrays = _copy(base)
    meta["format_version"] = FORMAT_VERSION + 1
    meta["charrnn_version"] = "9.9.9\nrm -rf"
    write_npz(tmp_path / "new.npz", meta, arrays)
    one_line(tmp_path / "new.npz", "newer charrnn", "upgrade")


class _Alarm:
    """Unpickling this creates the file ``path``: proof that something was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (_touch, (self.path,))


def _touch(path: str) -> None:
    Path(path).write_text("unpickled")


@pytest.mark.parametrize("member", ["param.W", "optim.mem:W", "state.0", "meta", "junk"])
def test_a_pickled_object_array_is_refused_and_never_unpickled(base, tmp_path, member):
    alarm = tmp_path / "alarm"
    meta, arrays = _copy(base)
    arrays[member] = numpy.array([_Alarm(str(alarm)), 1.0], dtype=object)
    path = tmp_path / "pickled.npz"
    with open(path, "wb") as fh:  # numpy writes object arrays as pickles
        numpy.savez(fh, **({"meta": numpy.array(json.dumps(meta))} if member != "meta" else {}),
                    **arrays)
    message = one_line(path)
    if member in ("param.W", "optim.mem:W", "state.0"):
        assert f"'{member}'" in message and "Python objects" in message, message
    assert not alarm.exists()


@pytest.mark.parametrize("value", [numpy.nan, numpy.inf])
def test_a_non_finite_parameter_is_refused(base, tmp_path, value):
    meta, arrays = _copy(base, "lstm")
    arrays["param.Wh1"][1, 2] = value
    write_npz(tmp_path / "nan.npz", meta, arrays, resign=True)  # its checksum agrees
    one_line(tmp_path / "nan.npz", "'param.Wh1'", "NaN or infinite")


def _peak_while(load):
    tracemalloc.start()
    try:
        load()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_header_claiming_a_trillion_parameters_is_refused_without_allocating(base, tmp_path):
    meta, arrays = _copy(base)
    meta["model"]["shapes"]["W"] = [10**6, 10**6]
    write_npz(tmp_path / "huge.npz", meta, arrays, resign=True)
    peak = _peak_while(lambda: one_line(tmp_path / "huge.npz", "model.shapes.W"))
    assert peak < 20 * 2**20, peak
    # the array agrees with the header: its .npy header claims the shape, its data is short
    meta, arrays = _copy(base)
    path = tmp_path / "lying.npz"
    write_npz(path, meta, arrays)
    with zipfile.ZipFile(path, "a") as zf:
        header = io.BytesIO()
        numpy.lib.format.write_array_header_1_0(
            header, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
        zf.writestr("state.1.npy", header.getvalue() + b"\0" * 64)
    meta["state_arrays"] = 2
    peak = _peak_while(lambda: one_line(path, "'state.1'"))
    assert peak < 20 * 2**20, peak


def test_a_zip_bomb_is_refused_before_it_is_read(base, tmp_path):
    """A member of 128 MiB of zeros, deflated to an eighth of a megabyte."""
    meta, arrays = _copy(base)
    path = tmp_path / "bomb.npz"
    write_npz(path, meta, arrays)
    count = 2**24  # float64 entries: 128 MiB
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("state.1.npy", "w", force_zip64=True) as fh:
            numpy.lib.format.write_array_header_1_0(
                fh, {"descr": "<f8", "fortran_order": False, "shape": (1, 1, count)})
            zeros = bytes(2**22)
            for _ in range(count * 8 // len(zeros)):
                fh.write(zeros)
    assert os.path.getsize(path) < 2**20
    peak = _peak_while(lambda: one_line(path, "zip bomb"))
    assert peak < 20 * 2**20, peak


def test_only_the_names_the_header_accounts_for_load(base, tmp_path):
    meta, arrays = _copy(base)
    arrays["notes"] = numpy.zeros(3)
    write_npz(tmp_path / "extra.npz", meta, arrays, resign=True)
    one_line(tmp_path / "extra.npz", "'notes'", "not one the header accounts for")
    meta, arrays = _copy(base)
    del arrays["optim.mem:V"]
    write_npz(tmp_path / "partial.npz", meta, arrays, resign=True)
    one_line(tmp_path / "partial.npz", "'optim.mem:V'")


@pytest.mark.parametrize("field, value, expected", [
    ("update", "abc", "not a whole number >= 0"),
    ("update", True, "not a whole number >= 0"),
    ("epoch", -1, "not a whole number >= 0"),
    ("position", 2**64, "not a whole number >= 0"),
    ("smooth_loss", float("nan"), "not a finite number"),
    ("loss", "1.5", "not a finite number"),
    ("train_seconds", -1.0, "not a finite number >= 0"),
    ("vocab", ["a", "bc"], "one-character strings"),
    ("vocab", [], "non-empty"),
    ("config", [], "an object"),
    ("batch_size", 0, ">= 1"),
    ("next_input_id", 10**6, "vocabulary"),
    ("dropout_rng", {"bit_generator": "MT19937"}, "PCG64"),
    ("logs", {"val_loss": float("inf")}, "finite"),
    ("callbacks", {"sampler": []}, "an object"),
    ("model", {"name": "rnn", "options": {}, "shapes": {"W": [8, -8]}}, "shape"),
    ("optimizer_state", {"eta": [0.1]}, "a finite number, a string"),
    ("state_arrays", 7, "'state.1'"),
])
def test_each_header_field_is_checked_by_name(base, tmp_path, field, value, expected):
    meta, arrays = _copy(base)
    meta[field] = value
    write_npz(tmp_path / "field.npz", meta, arrays)
    message = one_line(tmp_path / "field.npz", expected)
    assert field.split(".")[0] in message


def test_validate_against_model_fills_what_the_model_can_and_refuses_the_rest(base, tmp_path):
    """A gated checkpoint without its second biases (as 0.2.0 wrote) fits the model, whose
    missing_param fills them; a missing weight matrix does not; neither does another model."""
    meta, arrays = _copy(base, "lstm")
    model = base["lstm"]["model"]
    for layer in (1, 2):
        del meta["model"]["shapes"][f"bh{layer}"]
        for prefix in ("param.", "optim.m:", "optim.v:"):
            arrays.pop(f"{prefix}bh{layer}")
    write_npz(tmp_path / "one-bias.npz", meta, arrays, resign=True)
    ckpt = load_checkpoint(str(tmp_path / "one-bias.npz"))
    validate_against_model(ckpt, model)
    validate_against_model(ckpt, type(model))
    del ckpt.params["Wh1"]
    with pytest.raises(CharrnnError, match="lacks parameter 'Wh1'"):
        validate_against_model(ckpt, model)
    # a parameter dropped from the arrays but not from the header: refused on load
    meta, arrays = _copy(base, "lstm")
    del arrays["param.bh1"]
    write_npz(tmp_path / "no-bh.npz", meta, arrays, resign=True)
    one_line(tmp_path / "no-bh.npz", "'param.bh1'")
    with pytest.raises(CharrnnError, match="not 'rnn'"):
        validate_against_model(base["lstm"]["ckpt"], base["rnn"]["model"])
    with pytest.raises(CharrnnError, match="state arrays"):
        validate_against_model(Checkpoint(**{**base["lstm"]["ckpt"].__dict__, "state": []}),
                               model)


def test_format_3_files_still_load(base, tmp_path):
    """What charrnn 0.4.0 to 0.5.0 wrote: format 3, array checksums, no header checksum."""
    meta, arrays = _copy(base, "lstm")
    meta["format_version"] = 3
    meta["charrnn_version"] = "0.5.0"
    for key in ("header_checksum", "run_id"):
        del meta[key]
    write_npz(tmp_path / "v3.npz", meta, arrays)
    ckpt = load_checkpoint(str(tmp_path / "v3.npz"))
    check_loaded(ckpt)
    for key, value in base["lstm"]["ckpt"].params.items():
        assert numpy.array_equal(ckpt.params[key], value), key
