"""Every user-facing failure is one line: a table of bad inputs across every command.

Each row runs the ``charrnn`` launcher in this process (``tests/test_cli.py`` checks, with the
console script in a real process, that such a failure ends the process in one line with a
non-zero status) and asserts a non-zero exit,
exactly one line on stderr that names the problem, no traceback, that nothing already saved (a
trained run, the data files) changed, and that no file appeared where the command ran.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Dict, Tuple

import pytest
from helpers import LEAN, TEXT, assert_one_line_error, charrnn_inproc

TINY = ("--hidden", 8, "--seq-length", 10, "--iterations", 20)


def snapshot(root: Path) -> Dict[str, Tuple[int, str]]:
    """Every file under ``root`` with its size and digest: what "unchanged" means below."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_fifo():
            data = path.read_bytes()
            out[str(path.relative_to(root))] = (len(data), hashlib.sha256(data).hexdigest())
    return out


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A trained run and the files the rows point at, made once."""
    root = tmp_path_factory.mktemp("saved")
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    (root / "empty.txt").write_text("", encoding="utf-8")
    (root / "short.txt").write_text("abc", encoding="utf-8")
    (root / "latin1.txt").write_bytes("caf\xe9 au lait, d\xe9j\xe0 vu\n".encode("latin-1") * 20)
    (root / "afile").write_text("not a directory\n", encoding="utf-8")
    (root / "adir").mkdir()
    (root / "garbage.npz").write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    (root / "prime.txt").write_text("the", encoding="utf-8")
    foreign = root / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious\n", encoding="utf-8")
    os.mkfifo(root / "fifo")
    run = root / "run"
    proc = charrnn_inproc("run", "--data", root / "text.txt", *TINY, "--checkpoint-every", 10,
                       *LEAN, "--out", run, cwd=root)
    assert proc.returncode == 0, proc.stderr
    damaged = root / "damaged"
    shutil.copytree(run, damaged)
    raw = bytearray((damaged / "latest.npz").read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = b"\0" * 64
    (damaged / "latest.npz").write_bytes(bytes(raw))
    nockpt = root / "nockpt"
    nockpt.mkdir()
    (nockpt / "config.json").write_text("{}", encoding="utf-8")
    piped = root / "piped"  # a run whose latest.npz is a pipe: reading it would block
    shutil.copytree(run, piped)
    (piped / "latest.npz").unlink()
    os.mkfifo(piped / "latest.npz")
    # a run whose text was shortened after training
    shortened = root / "shortened"
    (root / "shortened.txt").write_text(TEXT, encoding="utf-8")
    proc = charrnn_inproc("run", "--data", root / "shortened.txt", *TINY, "--iterations", 30,
                          *LEAN, "--out", shortened, cwd=root)
    assert proc.returncode == 0, proc.stderr
    (root / "shortened.txt").write_text(TEXT[: len(TEXT) // 4], encoding="utf-8")
    # a directory reached through a symbolic link, and a text beside the link's target
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "inside").mkdir()
    (root / "elsewhere" / "beside.txt").write_text("", encoding="utf-8")  # empty: refused
    os.symlink(root / "elsewhere" / "inside", root / "link")
    (root / "beside.txt").write_text(TEXT, encoding="utf-8")  # what `..` would wrongly reach
    return root


D = "{root}/text.txt"
RUN = "{root}/run"

#: (id, arguments, parts the one error line must contain). ``{root}`` is the fixture folder.
ROWS = [
    # -- run: numbers
    ("eta-nan", ["run", "--eta", "nan"], ["--eta", "not a finite number"]),
    ("eta-inf", ["run", "--eta", "inf"], ["--eta", "not a finite number"]),
    ("eta-negative", ["run", "--eta", "-1"], ["--eta"]),
    ("eta-zero", ["run", "--eta", "0"], ["--eta"]),
    ("eta-word", ["run", "--eta", "fast"], ["--eta", "fast"]),
    ("sigma-nan", ["run", "--sigma", "nan"], ["--sigma"]),
    ("temperature-inf", ["run", "--temperature", "inf"], ["--temperature"]),
    ("temperature-zero", ["run", "--temperature", "0"], ["--temperature"]),
    ("seed-negative", ["run", "--seed", "-1"], ["--seed"]),
    ("hidden-zero", ["run", "--hidden", "0"], ["--hidden"]),
    ("hidden-huge", ["run", "--data", D, "--hidden", "3000000"], ["needs about", "--hidden"]),
    ("layers-zero", ["run", "--layers", "0"], ["--layers"]),
    ("batch-zero", ["run", "--batch-size", "0"], ["--batch-size"]),
    ("batch-too-large", ["run", "--data", D, "--batch-size", "100000"],
     ["--batch-size 100000", "largest batch"]),
    ("seq-zero", ["run", "--seq-length", "0"], ["--seq-length"]),
    ("dropout-one", ["run", "--dropout", "1"], ["--dropout"]),
    ("embedding-rnn", ["run", "--embedding", "16"], ["--embedding", "rnn", "drop --embedding"]),
    ("embedding-negative", ["run", "--model", "gru", "--embedding", "-4"], ["--embedding"]),
    ("dropout-nan", ["run", "--dropout", "nan"], ["--dropout"]),
    ("clip-negative", ["run", "--clip", "-1"], ["--clip"]),
    ("clip-norm-zero", ["run", "--clip-norm", "0"], ["--clip-norm"]),
    ("time-limit-zero", ["run", "--time-limit", "0"], ["--time-limit"]),
    ("time-limit-nan", ["run", "--time-limit", "nan"], ["--time-limit"]),
    ("iterations-zero", ["run", "--iterations", "0"], ["--iterations"]),
    ("val-frac-one", ["run", "--val-frac", "1"], ["--val-frac"]),
    ("target-loss-nan", ["run", "--target-loss", "nan"], ["--target-loss"]),
    ("log-every-zero", ["run", "--log-every", "0"], ["--log-every"]),
    ("lr-final-inf", ["run", "--lr-final", "inf"], ["--lr-final"]),
    # -- run: names
    ("backend-unknown", ["run", "--backend", "abacus"], ["--backend", "abacus"]),
    ("model-unknown", ["run", "--model", "transformer"], ["--model", "transformer"]),
    ("optimizer-unknown", ["run", "--optimizer", "lion"], ["--optimizer", "lion"]),
    ("dtype-unknown", ["run", "--dtype", "float16"], ["--dtype", "float16"]),
    ("preset-unknown", ["run", "--preset", "fastest"], ["fastest"]),
    ("schedule-unknown", ["run", "--lr-schedule", "zigzag"], ["--lr-schedule", "zigzag"]),
    ("option-unknown", ["run", "--learning-rate", "0.1"], ["--learning-rate"]),
    # -- run: files
    ("data-missing", ["run", "--data", "{root}/nowhere.txt"], ["nowhere.txt", "does not exist"]),
    ("data-directory", ["run", "--data", "{root}/adir"], ["adir", "directory"]),
    ("data-device", ["run", "--data", "/dev/zero"], ["/dev/zero", "not a regular file"]),
    ("data-fifo", ["run", "--data", "{root}/fifo"], ["fifo", "not a regular file"]),
    ("data-empty", ["run", "--data", "{root}/empty.txt"], ["empty"]),
    ("data-too-short", ["run", "--data", "{root}/short.txt"], ["--seq-length"]),
    ("data-wrong-encoding", ["run", "--data", "{root}/latin1.txt"],
     ["cannot be decoded", "--encoding"]),
    ("encoding-unknown", ["run", "--data", D, "--encoding", "klingon"], ["klingon"]),
    ("out-empty", ["run", "--data", D, "--out", ""], ["--out is empty"]),
    ("out-is-a-file", ["run", "--data", D, "--out", "{root}/afile"], ["afile", "is a file"]),
    ("out-holds-other-files", ["run", "--data", D, "--out", "{root}/foreign"],
     ["foreign", "already holds other files"]),
    ("out-holds-a-run", ["run", "--data", D, "--out", RUN], ["already holds a run", "--resume"]),
    ("data-empty-name", ["run", "--data", ""], ["--data is empty"]),
    ("data-through-a-link-and-dotdot", ["run", "--data", "{root}/link/../beside.txt"],
     ["elsewhere/beside.txt", "is empty"]),
    ("encoding-empty", ["run", "--data", D, "--encoding", ""], ["--encoding is empty"]),
    ("encoding-rot13", ["run", "--data", D, "--encoding", "rot13"],
     ["rot13 is not a text encoding"]),
    ("encoding-base64", ["run", "--data", D, "--encoding", "base64"],
     ["base64 is not a text encoding"]),
    ("encoding-utf-16-of-utf-8", ["run", "--data", D, "--encoding", "utf-16"],
     ["cannot be decoded as utf-16", "--encoding"]),
    ("out-not-utf-8", ["run", "--data", D, "--out", "{root}/bad\udcff"], ["is not valid UTF-8"]),
    # -- run: resume
    ("resume-empty", ["run", "--resume", ""], ["--resume is empty"]),
    ("resume-latest-is-a-pipe", ["run", "--resume", "{root}/piped"], ["not a regular file"]),
    ("resume-text-shortened", ["run", "--resume", "{root}/shortened", "--iterations", "60"],
     ["shortened.txt is shorter than when the run", "put back the text"]),
    ("resume-missing", ["run", "--resume", "{root}/nowhere"], ["--resume", "not a run directory"]),
    ("resume-changes-hidden", ["run", "--resume", RUN, "--hidden", "16"],
     ["--hidden 8, not 16", "drop --hidden"]),
    ("resume-changes-optimizer", ["run", "--resume", RUN, "--optimizer", "adam"],
     ["--optimizer adagrad, not adam"]),
    ("resume-changes-data", ["run", "--resume", RUN, "--data", "{root}/latin1.txt",
                             "--encoding", "latin-1"], ["--data", "drop --data"]),
    ("resume-changes-sample-seed", ["run", "--resume", RUN, "--sample-seed", "3"],
     ["--sample-seed 0, not 3"]),
    ("resume-with-other-out", ["run", "--resume", RUN, "--out", "{root}/elsewhere"],
     ["drop --out"]),
    ("resume-fewer-iterations", ["run", "--resume", RUN, "--iterations", "5"],
     ["already done 20 updates", "--iterations larger than 20"]),
    ("resume-damaged", ["run", "--resume", "{root}/damaged"], ["damaged", "latest.npz"]),
    ("resume-before-first-checkpoint", ["run", "--resume", "{root}/nockpt"],
     ["no checkpoint", "--out"]),
    # -- sample
    ("mlflow-store-unusable", ["run", "--data", D, "--mlflow", "--mlflow-uri", "nosuch://x"],
     ["MLflow could not open the tracking store at nosuch://x", "--mlflow-uri"]),
    ("sample-missing", ["sample", "--checkpoint", "{root}/nowhere.npz"], ["does not exist"]),
    ("sample-device", ["sample", "--checkpoint", "/dev/zero"], ["/dev/zero", "not a regular file"]),
    ("sample-pipe", ["sample", "--checkpoint", "{root}/fifo"], ["fifo", "not a regular file"]),
    ("report-latest-is-a-pipe", ["report", "{root}/piped"], ["not a regular file"]),
    ("sample-garbage", ["sample", "--checkpoint", "{root}/garbage.npz"],
     ["not a readable charrnn checkpoint"]),
    ("sample-prime-outside-vocabulary", ["sample", "--checkpoint", RUN, "--prime", "\u2603"],
     ["U+2603", "vocabulary"]),
    ("sample-prime-twice", ["sample", "--checkpoint", RUN, "--prime", "t",
                            "--prime-file", "{root}/prime.txt"], ["--prime or --prime-file"]),
    ("sample-temperature-nan", ["sample", "--checkpoint", RUN, "--temperature", "nan"],
     ["--temperature"]),
    ("sample-length-zero", ["sample", "--checkpoint", RUN, "--length", "0"], ["--length"]),
    ("sample-no-checkpoint", ["sample", "--checkpoint", "{root}/nockpt"], ["no checkpoint"]),
    # -- gradcheck, report, conformance, plugins, the group
    ("gradcheck-step-nan", ["gradcheck", "--step", "nan"], ["--step"]),
    ("gradcheck-dropout-one", ["gradcheck", "--dropout", "1"], ["--dropout"]),
    ("gradcheck-dtype-unknown", ["gradcheck", "--dtype", "float16"], ["--dtype", "float16"]),
    ("gradcheck-data-missing", ["gradcheck", "--data", "{root}/nowhere.txt"], ["does not exist"]),
    ("report-missing", ["report", "{root}/nowhere"], ["not a run directory"]),
    ("report-before-first-checkpoint", ["report", "{root}/nockpt"], ["no checkpoint"]),
    ("conformance-unknown-backend", ["conformance", "--backend", "abacus"], ["abacus"]),
    ("plugins-unknown-option", ["plugins", "--yaml"], ["--yaml"]),
    ("command-unknown", ["train"], ["train"]),
    ("disable-unknown-plugin", ["--disable", "lossplott", "run"],
     ["--disable lossplott", "no installed plugin is named lossplott", "charrnn plugins"]),
    ("disable-empty-name", ["--disable", "", "run"], ["--disable", "empty name"]),
]


def test_the_table_is_large_and_covers_every_command():
    commands = {args[0] for _, args, _ in ROWS}
    assert len(ROWS) >= 40
    assert {"run", "sample", "gradcheck", "report", "conformance", "plugins"} <= commands


@pytest.mark.parametrize("args,parts", [(a, p) for _, a, p in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_gets_one_line(saved, tmp_path, args, parts):
    before = snapshot(saved)
    argv = [a.format(root=saved) for a in args]
    if argv[0] == "run" and "--resume" not in argv:
        argv += [*LEAN]
        if "--out" not in argv:
            argv += ["--out", str(tmp_path / "new")]
    proc = charrnn_inproc(*argv, cwd=tmp_path, timeout=120)
    assert_one_line_error(proc, *parts)
    assert snapshot(saved) == before
    assert list(tmp_path.iterdir()) == []  # no run directory, no runs/ folder, nothing
