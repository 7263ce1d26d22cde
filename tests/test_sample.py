"""``charrnn sample``: text from a saved checkpoint, through the installed console script."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy
import pytest
from charrnn.checkpoint import load_checkpoint
from helpers import LEAN, TEXT, VOCAB, charrnn_inproc, console_script
from helpers import assert_one_line_error as _one_line_error


def assert_one_line_error(proc, *parts) -> str:
    """``sample`` prints nothing on stdout when it fails."""
    return _one_line_error(proc, *parts, quiet_stdout=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 300-update run, a 30-update run, and a directory whose best.npz is the short run's
    latest.npz and whose latest.npz is the long run's (to tell which one a directory uses)."""
    root = tmp_path_factory.mktemp("sample")
    data = root / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    for name, iterations in (("long", 300), ("short", 30)):
        proc = charrnn_inproc("run", "--data", data, "--hidden", 16, "--iterations", iterations,
                           "--checkpoint-every", 100, "--out", root / name, *LEAN, cwd=root)
        assert proc.returncode == 0, proc.stderr
    mixed = root / "mixed"
    mixed.mkdir()
    shutil.copy(root / "short" / "latest.npz", mixed / "best.npz")
    shutil.copy(root / "long" / "latest.npz", mixed / "latest.npz")
    return root


def sample(root, *args) -> subprocess.CompletedProcess:
    return charrnn_inproc("sample", *args, cwd=root)


def generated(proc) -> str:
    """The printed text, without the one newline ``click.echo`` ends it with."""
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr == ""
    assert proc.stdout.endswith("\n")
    return proc.stdout[:-1]


@pytest.mark.parametrize("which", ["long", "long/latest.npz", "long/best.npz"])
def test_sample_prints_length_characters_from_the_vocabulary(runs, which):
    text = generated(sample(runs, "--checkpoint", runs / which, "--length", 120, "--seed", 1))
    assert len(text) == 120
    assert set(text) <= set(VOCAB)


def test_same_seed_same_text_other_seed_other_text(runs):
    ckpt = runs / "long"
    a = generated(sample(runs, "--checkpoint", ckpt, "--length", 200, "--seed", 5))
    b = generated(sample(runs, "--checkpoint", ckpt, "--length", 200, "--seed", 5))
    c = generated(sample(runs, "--checkpoint", ckpt, "--length", 200, "--seed", 6))
    assert a == b
    assert c != a


def test_run_directory_uses_best_npz(runs):
    args = ("--length", 200, "--seed", 2)
    from_dir = generated(sample(runs, "--checkpoint", runs / "mixed", *args))
    from_best = generated(sample(runs, "--checkpoint", runs / "mixed" / "best.npz", *args))
    from_latest = generated(sample(runs, "--checkpoint", runs / "mixed" / "latest.npz", *args))
    assert from_dir == from_best
    assert from_dir != from_latest


def test_run_directory_without_best_uses_latest(runs, tmp_path):
    only_latest = tmp_path / "only-latest"
    only_latest.mkdir()
    shutil.copy(runs / "long" / "latest.npz", only_latest / "latest.npz")
    args = ("--length", 100, "--seed", 4)
    assert generated(sample(runs, "--checkpoint", only_latest, *args)) == \
        generated(sample(runs, "--checkpoint", runs / "long" / "latest.npz", *args))


def test_prime_comes_first(runs):
    text = generated(sample(runs, "--checkpoint", runs / "long", "--prime", "ab",
                            "--length", 50, "--seed", 3))
    assert text.startswith("ab") and len(text) == 52
    assert set(text) <= set(VOCAB)
    # the prime changes what follows it (same seed, no prime: another text)
    plain = generated(sample(runs, "--checkpoint", runs / "long", "--length", 50, "--seed", 3))
    assert text[2:] != plain


def test_prime_file_is_the_same_as_prime(runs, tmp_path):
    prime = "the lazy dog.\nhow "
    path = tmp_path / "prime.txt"
    path.write_text(prime, encoding="utf-8")
    args = ("--checkpoint", runs / "long", "--length", 60, "--seed", 8)
    from_file = generated(sample(runs, *args, "--prime-file", path))
    from_option = generated(sample(runs, *args, "--prime", prime))
    assert from_file.startswith(prime) and len(from_file) == len(prime) + 60
    assert from_file == from_option


def _greedy(checkpoint: Path, length: int) -> str:
    """Argmax decoding from the checkpoint's hidden state and next input, in-process."""
    from charrnn.assembly import make_backend, model_from_checkpoint

    ckpt = load_checkpoint(str(checkpoint))
    be = make_backend("numpy", ckpt.meta["dtype"])
    model = model_from_checkpoint(ckpt, be)
    state = tuple(be.asarray(s) for s in ckpt.state)
    x, out = int(ckpt.meta["next_input_id"]), []
    for _ in range(length):
        state, logits = model.step(state, be.asarray(numpy.array([x])))
        x = int(numpy.argmax(be.to_numpy(logits)))
        out.append(ckpt.vocab[x])
    return "".join(out)


def test_top_k_1_is_greedy_and_ignores_the_seed(runs):
    ckpt = runs / "long" / "latest.npz"
    a = generated(sample(runs, "--checkpoint", ckpt, "--top-k", 1, "--length", 80, "--seed", 1))
    b = generated(sample(runs, "--checkpoint", ckpt, "--top-k", 1, "--length", 80, "--seed", 99))
    assert a == b
    assert a == _greedy(ckpt, 80)


def test_a_vanishing_temperature_samples_greedily(runs):
    """A temperature so small that dividing the logits by it overflows: the likeliest character
    every time, as with --top-k 1, and no warning or error."""
    ckpt = runs / "long" / "latest.npz"
    text = generated(sample(runs, "--checkpoint", ckpt, "--temperature", "1e-310",
                            "--length", 80, "--seed", 5))
    assert text == _greedy(ckpt, 80)


def test_temperature_half(runs):
    args = ("--checkpoint", runs / "long", "--temperature", 0.5, "--length", 150)
    a = generated(sample(runs, *args, "--seed", 11))
    assert len(a) == 150 and set(a) <= set(VOCAB)
    assert generated(sample(runs, *args, "--seed", 11)) == a


# -- errors ------------------------------------------------------------------------------------

def test_prime_character_outside_the_vocabulary(runs):
    proc = sample(runs, "--checkpoint", runs / "long", "--prime", "the Zoo")
    assert_one_line_error(proc, "'Z'", "U+005A", "vocabulary")


def test_prime_file_character_outside_the_vocabulary(runs, tmp_path):
    path = tmp_path / "prime.txt"
    path.write_text("the \u00e9t\u00e9", encoding="utf-8")
    proc = sample(runs, "--checkpoint", runs / "long", "--prime-file", path)
    assert_one_line_error(proc, "'\u00e9'", "vocabulary")


def test_prime_and_prime_file_together(runs, tmp_path):
    path = tmp_path / "prime.txt"
    path.write_text("the ", encoding="utf-8")
    proc = sample(runs, "--checkpoint", runs / "long", "--prime", "ab", "--prime-file", path)
    assert_one_line_error(proc, "--prime", "--prime-file")


@pytest.mark.parametrize("option, value, expected", [
    ("--length", "0", "'--length': 0 is not in the range 1<=x<=1000000"),
    ("--temperature", "0", "'--temperature': 0.0 is not in the range x>0"),
    ("--temperature", "-1", "'--temperature': -1.0 is not in the range x>0"),
    ("--top-k", "0", "'--top-k': 0 is not in the range x>=1"),
])
def test_out_of_range_options(runs, option, value, expected):
    proc = sample(runs, "--checkpoint", runs / "long", option, value)
    assert_one_line_error(proc, expected)


def test_missing_checkpoint(runs, tmp_path):
    proc = sample(runs, "--checkpoint", tmp_path / "absent.npz")
    assert_one_line_error(proc, "absent.npz", "does not exist")


def test_truncated_checkpoint(runs, tmp_path):
    path = tmp_path / "latest.npz"
    data = (runs / "long" / "latest.npz").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    proc = sample(runs, "--checkpoint", path)
    assert_one_line_error(proc, str(path), "not a readable charrnn checkpoint")


def test_run_directory_without_checkpoint(runs, tmp_path):
    empty = tmp_path / "empty-run"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    proc = sample(runs, "--checkpoint", empty)
    assert_one_line_error(proc, str(empty), "holds no checkpoint")


def test_checkpoint_option_is_required(runs):
    proc = sample(runs, "--length", 10)
    assert_one_line_error(proc, "--checkpoint")


def test_missing_prime_file_gives_one_line(runs, tmp_path):
    proc = sample(runs, "--checkpoint", runs / "long", "--prime-file", tmp_path / "nope.txt")
    assert_one_line_error(proc, "nope.txt", "does not exist")


def test_missing_prime_file_names_the_right_option(runs, tmp_path):
    proc = sample(runs, "--checkpoint", runs / "long", "--prime-file", tmp_path / "nope.txt")
    line = assert_one_line_error(proc, "nope.txt")
    assert "--prime-file" in line and "--data" not in line


def test_every_option_has_help():
    import click
    from charrnn.cli import run
    from charrnn.registry import get_registry

    group = click.Group()
    get_registry().add_commands(group)
    options = [p for p in group.commands["sample"].params if isinstance(p, click.Option)]
    assert {o.name for o in options} == {"checkpoint", "length", "temperature", "top_k", "prime",
                                         "prime_file", "seed", "backend"}
    of_run = {p.name: p for p in run.get_params(click.Context(run))}
    options += [of_run[name] for name in ("sample_every", "sample_length", "temperature",
                                          "top_k", "sample_seed")]
    for option in options:
        assert option.help and len(option.help) > 20, option.name


def test_the_prime_is_read_from_the_state_training_reached(runs):
    """The prime is fed from the checkpoint's saved state, not from zeros: what the command
    prints is what sampling after ``warm_up`` from that state gives, and not what it gives from
    a zero state."""
    import numpy
    from charrnn.checkpoint import load_checkpoint, resolve_checkpoint_path
    from charrnn.generate import checkpoint_state
    from charrnn.sampling import sample_ids, warm_up
    from charrnn.assembly import make_backend, model_from_checkpoint

    ckpt = load_checkpoint(resolve_checkpoint_path(str(runs / "long")))
    model = model_from_checkpoint(ckpt, make_backend("numpy", ckpt.meta.get("dtype", "float64")))
    ids = [ckpt.vocab.index(c) for c in "ab"]

    def expected(start):
        state = warm_up(model, start, ids)
        out = sample_ids(model, state, ids[-1], 40, rng=numpy.random.default_rng(7))
        return "ab" + "".join(ckpt.vocab[i] for i in out)

    printed = generated(sample(runs, "--checkpoint", runs / "long", "--prime", "ab",
                               "--length", 40, "--seed", 7))
    assert printed == expected(checkpoint_state(ckpt, model))
    assert printed != expected(model.zero_state(1))


def test_a_closed_standard_output_is_one_line_not_lost_text(runs):
    """``charrnn sample ... >&-``: the text has nowhere to go, so it is refused, not dropped
    with exit status 0 (a real process: its standard output is what this is about)."""
    ckpt = runs / "long" / "latest.npz"
    proc = subprocess.run(["bash", "-c", '"$0" sample --checkpoint "$1" --length 20 >&-',
                           console_script(), str(ckpt)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("Error: standard output is closed") and \
        proc.stderr.count("\n") == 1, proc.stderr
