"""The ``charrnn`` launcher end to end, through the installed console script and ``python -m``."""
from __future__ import annotations

import json

import charrnn
import pytest

#: The two ways to launch: the installed console script, and ``python -m charrnn``.
LAUNCHERS = ("script", "module")

TEXT = "the quick brown fox jumps over the lazy dog.\nhow vexingly quick daft zebras jump!\n" * 4


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_short_run_end_to_end(run_charrnn, data_file, tmp_path, launcher):
    out = tmp_path / "run1"
    proc = run_charrnn("run", "--data", data_file, "--iterations", 300, "--sample-every", 100,
                       "--sample-length", 40, "--out", out, "--hidden", 16, launcher=launcher)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    stdout = proc.stdout
    assert f"charrnn {charrnn.__version__}: {data_file}, {len(TEXT):,} characters, " \
           f"{len(set(TEXT))} distinct" in stdout
    assert f"run directory: {out}" in stdout
    assert "model rnn (hidden 16; " in stdout and "batch 1 x sequence 25; 300 updates" in stdout
    # progress: with the default --log-every 1000 the only line is the one at the end
    assert "update 300/300" in stdout and "smooth loss" in stdout
    updates = [int(line.split()[4]) for line in stdout.splitlines()
               if line.startswith("--- sample at update ")]
    assert {100, 200, 300} <= set(updates) <= {0, 100, 200, 300}, updates
    assert len(updates) == len(set(updates))  # the sample at the end is not taken twice
    # the sample's text: between its header line and the closing "---" (TEXT has no "-")
    sample = stdout.split("--- sample at update 300")[1].split("\n", 1)[1].split("\n---\n")[0]
    assert len(sample) == 40 and set(sample) <= set(TEXT)
    assert "done: 300 updates" in stdout

    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["hidden"] == 16
    assert config["iterations"] == 300
    assert config["seq_length"] == 25
    assert config["backend"] == "numpy" and config["optimizer"] == "adagrad"
    assert config["model"] == "rnn" and config["layers"] == 1 and config["batch_size"] == 1
    assert config["eta"] == 0.1 and config["sigma"] == 0.01 and config["clip"] == 5.0
    assert config["data"] == str(data_file)
    assert config["vocab_size"] == len(set(TEXT))
    assert config["charrnn_version"] == charrnn.__version__


def test_same_seed_same_samples(run_charrnn, data_file, tmp_path):
    outputs = []
    for name in ("a", "b", "c"):
        seed = "1" if name == "c" else "0"
        proc = run_charrnn("run", "--data", data_file, "--iterations", 50, "--sample-every", 50,
                           "--hidden", 8, "--seed", seed, "--out", tmp_path / name)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout.split("--- sample at update 50")[1].split("---")[1])
    assert outputs[0] == outputs[1] and outputs[0].strip()
    assert outputs[2] != outputs[0]  # another seed: other weights, another sample


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_help_lists_commands(run_charrnn, launcher):
    proc = run_charrnn("--help", launcher=launcher)
    assert proc.returncode == 0
    assert "Usage: charrnn" in proc.stdout
    commands = proc.stdout.split("Commands:")[1]
    assert "run" in commands and "plugins" in commands
    assert proc.stderr == ""


def test_version(run_charrnn):
    proc = run_charrnn("--version")
    assert proc.returncode == 0
    assert charrnn.__version__ in proc.stdout and charrnn.__version__ != "0.0.0+unknown"


def test_run_help_lists_options(run_charrnn):
    proc = run_charrnn("run", "--help")
    assert proc.returncode == 0
    for option in ("--backend", "--optimizer", "--data", "--hidden", "--seq-length", "--eta",
                   "--iterations", "--out", "--sample-every", "--dtype", "--encoding"):
        assert option in proc.stdout
    from charrnn.registry import get_registry

    reg = get_registry()
    assert "[" + "|".join(reg.names("backend")) + "]" in proc.stdout
    assert "[" + "|".join(reg.names("optimizer")) + "]" in proc.stdout
    assert {"adagrad", "sgd"} <= set(reg.names("optimizer"))


def _setup(case, tmp_path, data_file):
    """Arguments for one bad-input case (besides --out) and the text its message must hold."""
    if case == "missing":
        return ["--data", tmp_path / "absent.txt"], "does not exist"
    if case == "directory":
        (tmp_path / "adir").mkdir()
        return ["--data", tmp_path / "adir"], "is a directory"
    if case == "empty":
        (tmp_path / "empty.txt").write_text("")
        return ["--data", tmp_path / "empty.txt"], "is empty"
    if case == "short":
        (tmp_path / "short.txt").write_text("abcdef")
        return ["--data", tmp_path / "short.txt"], "has 6 characters but --seq-length 25"
    if case == "undecodable":
        (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\xfa")
        return ["--data", tmp_path / "bin.txt", "--encoding", "utf-8"], \
            "cannot be decoded as utf-8"
    if case == "bad-encoding":
        return ["--data", data_file, "--encoding", "klingon"], "unknown encoding 'klingon'"
    flag, value, expected = {
        "hidden-0": ("--hidden", "0", "'--hidden': 0 is not in the range x>=1"),
        "seq-length-0": ("--seq-length", "0", "'--seq-length': 0 is not in the range x>=1"),
        "iterations-0": ("--iterations", "0", "'--iterations': 0 is not in the range x>=1"),
        "eta-0": ("--eta", "0", "'--eta': 0.0 is not in the range x>0"),
        "eta-negative": ("--eta", "-1", "'--eta': -1.0 is not in the range x>0"),
        "sigma-0": ("--sigma", "0", "'--sigma': 0.0 is not in the range x>0"),
        "backend": ("--backend", "nonesuch", ("'--backend'", "'nonesuch'", "'numpy'")),
        "optimizer": ("--optimizer", "nonesuch",
                      ("'--optimizer'", "'nonesuch'", "'adagrad'", "'sgd'")),
        "dtype": ("--dtype", "float16", "'--dtype'"),
    }[case]
    return ["--data", data_file, flag, value], expected


BAD_CASES = ["missing", "directory", "empty", "short", "undecodable", "bad-encoding", "hidden-0",
             "seq-length-0", "iterations-0", "eta-0", "eta-negative", "sigma-0", "backend",
             "optimizer", "dtype"]


#: Every case in this process; in a real process through both launchers, a case that Click
#: refuses and one that charrnn refuses (what the process adds: its exit status, stderr, no
#: traceback at exit is the same for every case).
BAD_LAUNCHES = [(case, "inprocess") for case in BAD_CASES] + \
    [(case, launcher) for case in ("missing", "hidden-0") for launcher in LAUNCHERS]


@pytest.mark.parametrize("case, launcher", BAD_LAUNCHES)
def test_bad_input_gives_one_error_line(run_charrnn, data_file, tmp_path, case, launcher):
    args, expected = _setup(case, tmp_path, data_file)
    out = tmp_path / "never"
    # the case's own arguments come last, so --iterations 0 overrides the harmless 5
    proc = run_charrnn("run", "--iterations", 5, "--out", out, *args, launcher=launcher)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ")
    for part in (expected,) if isinstance(expected, str) else expected:
        assert part in lines[0]
    assert not out.exists()  # everything is checked before the run directory is made
    assert "run directory" not in proc.stdout


def test_out_that_holds_files_is_refused_and_left_untouched(run_charrnn, data_file, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    keep = out / "notes.txt"
    keep.write_text("precious\n")
    proc = run_charrnn("run", "--data", data_file, "--iterations", 5, "--out", out)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "already holds other files" in lines[0] and str(out) in lines[0]
    assert keep.read_text() == "precious\n"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_out_that_is_a_file_is_refused(run_charrnn, data_file, tmp_path):
    out = tmp_path / "afile"
    out.write_text("x")
    proc = run_charrnn("run", "--data", data_file, "--iterations", 5, "--out", out)
    assert proc.returncode != 0
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "is a file" in lines[0]
    assert out.read_text() == "x"


def test_empty_existing_out_directory_is_used(run_charrnn, data_file, tmp_path):
    out = tmp_path / "empty-dir"
    out.mkdir()
    proc = run_charrnn("run", "--data", data_file, "--iterations", 5, "--hidden", 4, "--quiet",
                       "--sample-every", 5, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert (out / "config.json").is_file()


def test_unknown_command_and_option(run_charrnn):
    for args in (["frobnicate"], ["run", "--no-such-option"]):
        proc = run_charrnn(*args)
        assert proc.returncode != 0
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
        assert "Traceback" not in proc.stderr


def test_cli_runner_in_process(data_file, tmp_path):
    """The same launcher through Click's test runner (the Click layer, not the process)."""
    from charrnn.cli import cli
    from click.testing import CliRunner

    out = tmp_path / "inproc"
    result = CliRunner().invoke(cli, ["run", "--data", str(data_file), "--iterations", "20",
                                      "--hidden", "4", "--sample-every", "10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "--- sample at update 10" in result.output and "--- sample at update 20" in result.output
    assert json.loads((out / "config.json").read_text())["iterations"] == 20
