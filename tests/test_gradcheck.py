"""The gradient-check plugin: the pure check, broken gradients caught, the callback, the commands."""
from __future__ import annotations

import json
import textwrap

import numpy
import pytest
from charrnn.backends.numpy_backend import NumpyBackend
from charrnn.data import Corpus
from charrnn.errors import CharrnnError
from charrnn.plugins import gradcheck as gc

TEXT = ("The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs!\n"
        * 3)
PARAMS = ("W", "U", "V", "b", "c")


@pytest.fixture
def corpus():
    return Corpus.from_text(TEXT, "test text")


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


# -- backends with a deliberately wrong backward pass -----------------------------------------

class NoRecurrenceBackward(NumpyBackend):
    """Forgets the ``W.T @ dA[t+1]`` term: gradients stop at each step."""

    name = "norecurrence"

    def rnn_backward(self, W, H, dH, dA):
        numpy.multiply(dH, 1.0 - H[1:] ** 2, out=dA)
        return dA


class NoTanhDerivative(NumpyBackend):
    """Forgets the ``1 - h**2`` factor of tanh's derivative."""

    name = "notanh"

    def rnn_backward(self, W, H, dH, dA):
        T = dH.shape[0]
        carry = numpy.zeros_like(dH[0])
        for t in range(T - 1, -1, -1):
            dA[t] = dH[t] + carry
            carry = dA[t] @ W
        return dA


class ShiftedScatter(NumpyBackend):
    """Adds each step's input gradient to the column of the next character id: U only is wrong."""

    name = "shiftedscatter"

    def segment_sum(self, ids, values, out):
        return super().segment_sum((ids + 1) % out.shape[0], values, out)


class NoFloat64(NumpyBackend):
    name = "nofloat64"
    capabilities = {"float64": False}


def sizes(K, m):
    return {"W": m * m, "U": m * K, "V": K * m, "b": m, "c": K}


# -- the pure function ------------------------------------------------------------------------

def test_check_passes_on_every_entry_at_m5(backend, corpus):
    result = gc.gradient_check(backend, corpus.ids, corpus.vocab_size, hidden=5, seq_length=25,
                               entries=0)
    assert result["passed"] is True
    assert result["dtype"] == "float64" and result["hidden"] == 5 and result["seq_length"] == 25
    assert result["entries"] == 0 and result["step"] == 1e-4 and result["threshold"] == 1e-4
    assert list(result["params"]) == list(PARAMS)
    expected = sizes(corpus.vocab_size, 5)
    for name in PARAMS:
        entry = result["params"][name]
        assert entry["checked"] == expected[name]
        assert 0 <= entry["rel"] < 1e-6, (name, entry)
        assert 0 <= entry["abs"] < 1e-7, (name, entry)
    # plain JSON, as checkpoints store it
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_check_at_m25_on_a_sample_of_entries_is_reproducible(backend, corpus):
    a = gc.gradient_check(backend, corpus.ids, corpus.vocab_size, hidden=25, entries=20, seed=3)
    b = gc.gradient_check(backend, corpus.ids, corpus.vocab_size, hidden=25, entries=20, seed=3)
    assert a == b and a["passed"]
    assert {n: e["checked"] for n, e in a["params"].items()} == \
        {"W": 20, "U": 20, "V": 20, "b": 20, "c": 20}
    assert max(e["rel"] for e in a["params"].values()) < 1e-5


def test_u_sample_favours_columns_of_characters_in_x():
    rng = numpy.random.default_rng(0)
    used = [2, 7, 11]
    chosen = gc.choose_entries((5, 40), 20, rng, 1, used)
    cols = chosen % 40
    in_used = numpy.isin(cols, used)
    assert len(chosen) == 20 == len(set(chosen.tolist()))
    assert in_used.sum() == 15 and (~in_used).sum() == 5  # zero-gradient columns are checked too
    # too few used entries: all of them, the rest from other columns
    chosen = gc.choose_entries((2, 40), 20, rng, 1, [5])
    assert numpy.isin(chosen % 40, [5]).sum() == 2 and len(chosen) == 20
    # 0 or None: everything
    assert len(gc.choose_entries((5, 40), 0, rng, 1, used)) == 200
    assert len(gc.choose_entries((5, 5), None, rng)) == 25


def test_a_character_indexed_row_parameter_is_sampled_by_rows():
    """A gated model's first Wx is (K, 4m): the character picks a row, not a column."""
    rng = numpy.random.default_rng(1)
    chosen = gc.choose_entries((40, 8), 16, rng, 0, [3, 9])
    rows = chosen // 8
    assert numpy.isin(rows, [3, 9]).sum() == 12 and len(chosen) == 16


@pytest.mark.parametrize("broken, wrong", [
    (NoRecurrenceBackward, {"W", "U", "b"}),
    (NoTanhDerivative, {"W", "U", "b"}),
    (ShiftedScatter, {"U"}),
])
def test_a_wrong_gradient_is_caught_in_the_parameters_it_affects(corpus, broken, wrong):
    result = gc.gradient_check(broken(dtype="float64"), corpus.ids, corpus.vocab_size,
                               hidden=5, entries=0)
    assert result["passed"] is False
    for name in PARAMS:
        rel = result["params"][name]["rel"]
        if name in wrong:
            assert rel > 1e-3, (name, rel)
        else:  # V and c do not go through the recurrence
            assert rel < 1e-6, (name, rel)
    # the default sample of a run finds it too
    assert not gc.gradient_check(broken(dtype="float64"), corpus.ids, corpus.vocab_size)["passed"]


def test_text_shorter_than_the_sequence_is_a_user_error(backend):
    short = Corpus.from_text("abcabc", "short")
    with pytest.raises(CharrnnError, match="at least 26 characters"):
        gc.gradient_check(backend, short.ids, short.vocab_size, seq_length=25)


def test_tables():
    result = {"hidden": 5, "seq_length": 10, "step": 1e-5, "entries": 20, "dtype": "float64",
              "threshold": 1e-6, "passed": True,
              "params": {"W": {"rel": 1.2e-9, "abs": 3.4e-11, "checked": 20},
                         "U": {"rel": 2.0e-9, "abs": 1.0e-11, "checked": 20}}}
    lines = gc.format_table(result).splitlines()
    assert lines[0].split() == ["parameter", "entries", "max", "rel", "error", "max", "abs",
                                "error"]
    assert lines[1].split() == ["W", "20", "1.20e-09", "3.40e-11"]
    assert len({len(line) for line in lines}) == 1  # fixed width
    md = gc.markdown_table(result).splitlines()
    assert md[0].startswith("| parameter | entries |")
    assert "| W | 20 | 1.20e-09 | 3.40e-11 |" in md and "| U | 20 | 2.00e-09 | 1.00e-11 |" in md
    assert gc.verdict(result).startswith("PASS: max relative error 2.00e-09 in U")
    assert gc.verdict({**result, "passed": False}).startswith("FAIL")


# -- the callback -----------------------------------------------------------------------------

def make_trainer(backend, corpus, hidden=4, **callback_args):
    from helpers import make_trainer as assemble

    return assemble(backend, corpus, hidden=hidden, optimizer="sgd", iterations=3,
                    callbacks=[gc.GradCheck(echo=False, **callback_args)])


def test_callback_checks_in_float64_and_logs_the_result(corpus):
    trainer = make_trainer(NumpyBackend(dtype="float32"), corpus)
    trainer.fit()
    assert trainer.update == 3
    result = trainer.logs["gradcheck"]
    assert result["passed"] and result["dtype"] == "float64" and result["hidden"] == 5


def test_callback_stops_a_run_with_wrong_gradients(corpus):
    trainer = make_trainer(NoRecurrenceBackward(dtype="float64"), corpus)
    with pytest.raises(gc.GradCheckFailed) as info:
        trainer.fit()
    assert isinstance(info.value, CharrnnError) and info.value.exit_code == 1
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("gradient check failed: max relative error ")
    assert "--gradcheck-threshold 0.0001" in message and "--no-gradcheck" in message
    assert trainer.update == 0 and trainer.logs["gradcheck"]["passed"] is False


def test_callback_is_skipped_on_resume(corpus):
    trainer = make_trainer(NoRecurrenceBackward(dtype="float64"), corpus)
    trainer.update = 2  # as after restoring a checkpoint
    trainer.logs["gradcheck"] = {"kept": True}
    trainer.fit()
    assert trainer.update == 3 and trainer.logs["gradcheck"] == {"kept": True}


def test_backend_without_float64_is_checked_in_its_dtype_and_not_stopped(corpus, capsys):
    trainer = make_trainer(NoFloat64(dtype="float32"), corpus)
    trainer.callbacks[0].echo = True
    trainer.fit()
    assert trainer.update == 3 and trainer.logs["gradcheck"]["dtype"] == "float32"
    assert "has no float64" in capsys.readouterr().out


def test_from_options():
    assert gc.GradCheck.from_options({"gradcheck": False}) is None
    cb = gc.GradCheck.from_options({})
    assert (cb.hidden, cb.step, cb.entries, cb.threshold) == (5, 1e-4, 20, 1e-4) and cb.echo
    cb = gc.GradCheck.from_options({"gradcheck": True, "gradcheck_hidden": 25,
                                    "gradcheck_step": 1e-5, "gradcheck_entries": 0,
                                    "gradcheck_threshold": 1e-6, "quiet": True, "seed": 4})
    assert (cb.hidden, cb.step, cb.entries, cb.threshold, cb.seed, cb.echo) == \
        (25, 1e-5, 0, 1e-6, 4, False)


# -- the commands, end to end -----------------------------------------------------------------

def table_rows(stdout):
    return {line.split()[0]: line.split()[1:] for line in stdout.splitlines()
            if line.split()[:1] and line.split()[0] in PARAMS and len(line.split()) == 4}


def test_gradcheck_command(run_charrnn, data_file):
    proc = run_charrnn("gradcheck", "--data", data_file)
    assert proc.returncode == 0, proc.stderr
    rows = table_rows(proc.stdout)
    assert list(rows) == list(PARAMS)
    assert rows["W"][0] == "25" and rows["b"][0] == "5"  # all entries by default
    assert all(float(r[1]) < 1e-6 for r in rows.values())
    assert "float64" in proc.stdout and "\nPASS: max relative error" in proc.stdout


def test_gradcheck_command_fails_above_the_threshold(run_charrnn, data_file):
    proc = run_charrnn("gradcheck", "--data", data_file, "--hidden", 25, "--entries", 5,
                       "--threshold", 1e-30)
    assert proc.returncode == 1
    assert "FAIL: max relative error" in proc.stdout and len(table_rows(proc.stdout)) == 5
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: gradient check failed"), proc.stderr


@pytest.mark.parametrize("args, expected", [
    (["--step", "0"], "--step"),
    (["--entries", "-1"], "--entries"),
    (["--data", "no-such-file.txt"], "does not exist"),
])
def test_gradcheck_command_bad_input(run_charrnn, args, expected):
    proc = run_charrnn("gradcheck", *args)
    assert proc.returncode not in (0, 1)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], proc.stderr


def test_run_prints_the_check_and_continues(run_charrnn, data_file, tmp_path):
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data_file, "--iterations", 5, "--hidden", 4,
                       "--gradcheck-hidden", 5, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "gradient check: numpy backend in float64, rnn hidden 5" in proc.stdout
    rows = table_rows(proc.stdout)
    assert list(rows) == list(PARAMS) and rows["W"][0] == "20"
    assert "PASS: max relative error" in proc.stdout and "done: 5 updates" in proc.stdout
    from charrnn.checkpoint import load_checkpoint

    saved = load_checkpoint(str(out / "latest.npz")).meta["logs"]["gradcheck"]
    assert saved["passed"] and saved["hidden"] == 5 and list(saved["params"]) == list(PARAMS)


def test_run_with_no_gradcheck(run_charrnn, data_file, tmp_path):
    proc = run_charrnn("run", "--data", data_file, "--iterations", 2, "--hidden", 4,
                       "--no-gradcheck", "--quiet", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert "gradient check" not in proc.stdout


def test_run_rejects_a_zero_step(run_charrnn, data_file, tmp_path):
    out = tmp_path / "never"
    proc = run_charrnn("run", "--data", data_file, "--iterations", 5, "--gradcheck-step", 0,
                       "--out", out)
    assert proc.returncode != 0
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "--gradcheck-step" in lines[0]
    assert not out.exists()


def test_run_on_a_backend_with_wrong_gradients_stops_before_training(run_charrnn, data_file,
                                                                     tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    info = site / "broken_rnn-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-rnn\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[charrnn]\nbrokenrnn = broken_rnn_backend\n")
    (site / "broken_rnn_backend.py").write_text(textwrap.dedent('''
        import numpy
        from charrnn import hookimpl
        from charrnn.backends.numpy_backend import NumpyBackend

        class BrokenRNN(NumpyBackend):
            name = "brokenrnn"

        def rnn_backward(be, W, H, dH, dA):  # drops the recurrent term
            numpy.multiply(dH, 1.0 - H[1:] ** 2, out=dA)
            return dA

        @hookimpl
        def register_backends(register):
            register(BrokenRNN)

        @hookimpl
        def register_kernels(register):
            register("rnn.backward", "brokenrnn", rnn_backward)
    '''))
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data_file, "--iterations", 5, "--backend", "brokenrnn",
                       "--out", out, env={"PYTHONPATH": str(site)})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: gradient check failed"), proc.stderr
    assert "FAIL: max relative error" in proc.stdout and "sample at update" not in proc.stdout
    # the run directory keeps what was written before training (its configuration), no more
    assert sorted(p.name for p in out.iterdir()) == [".charrnn.lock", "config.json"]
    assert json.loads((out / "config.json").read_text())["gradcheck_threshold"] == 1e-4


# -- every model ------------------------------------------------------------------------------

def expected_names(model, layers):
    from charrnn.registry import get_registry

    cls = get_registry().get("model", model)
    return list(cls.param_shapes(10, hidden=5, layers=layers))


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
def test_every_model_passes_at_one_and_two_layers_and_batch_one_and_three(
        backend, corpus, model, layers, batch):
    result = gc.gradient_check(backend, corpus.ids, corpus.vocab_size, model=model, hidden=5,
                               layers=layers, batch=batch, seq_length=12, entries=25)
    assert result["passed"], gc.format_table(result)
    assert (result["model"], result["layers"], result["batch"]) == (model, layers, batch)
    assert list(result["params"]) == expected_names(model, layers)  # a row per parameter
    # correct gradients stay well below the threshold; the wrong ones below are off by > 1e-3
    assert max(e["rel"] for e in result["params"].values()) < 2e-5, gc.format_table(result)


class NoCellCarry(NumpyBackend):
    """An LSTM backward pass that forgets ``dc_{t+1} * f_{t+1}``: the cell's memory path."""

    name = "nocellcarry"

    def lstm_backward(self, Wh, G, C, dH, dG):
        m = C.shape[-1]
        dh_next = numpy.zeros_like(dH[0])
        for t in range(dH.shape[0] - 1, -1, -1):
            g = G[t]
            i, f, o, n = g[:, :m], g[:, m:2 * m], g[:, 2 * m:3 * m], g[:, 3 * m:]
            tc = numpy.tanh(C[t + 1])
            dh = dH[t] + dh_next
            dc = dh * o * (1 - tc * tc)
            dG[t] = numpy.concatenate([dc * n * i * (1 - i), dc * C[t] * f * (1 - f),
                                       dh * tc * o * (1 - o), dc * i * (1 - n * n)], axis=1)
            dh_next = dG[t] @ Wh.T


class NoUpdateGateCarry(NumpyBackend):
    """A GRU backward pass that forgets the ``(1 - u) * dh`` path straight to ``h_{t-1}``."""

    name = "nogatecarry"

    def gru_backward(self, Wh, G, H, RH, dH, dG):
        m = H.shape[-1]
        dh_next = numpy.zeros_like(dH[0])
        for t in range(dH.shape[0] - 1, -1, -1):
            g, h_prev = G[t], H[t]
            r, u, n = g[:, :m], g[:, m:2 * m], g[:, 2 * m:]
            dh = dH[t] + dh_next
            dG[t, :, 2 * m:] = dh * u * (1 - n * n)
            dG[t, :, m:2 * m] = dh * (n - h_prev) * u * (1 - u)
            drh = dG[t, :, 2 * m:] @ Wh[:, 2 * m:].T
            dG[t, :, :m] = drh * h_prev * r * (1 - r)
            dh_next = drh * r + dG[t, :, :2 * m] @ Wh[:, :2 * m].T


@pytest.mark.parametrize("broken, model", [(NoCellCarry, "lstm"), (NoUpdateGateCarry, "gru")])
def test_a_wrong_gated_backward_pass_is_caught(corpus, broken, model):
    result = gc.gradient_check(broken(dtype="float64"), corpus.ids, corpus.vocab_size,
                               model=model, hidden=5, entries=20)
    assert result["passed"] is False
    rels = {name: entry["rel"] for name, entry in result["params"].items()}
    assert rels["Wh"] > 1e-3 and rels["Wx"] > 1e-3, rels
    assert rels["Wy"] < 1e-6 and rels["by"] < 1e-6, rels  # the output layer is not affected


def test_gradcheck_command_checks_the_model_asked_for(run_charrnn, data_file):
    proc = run_charrnn("gradcheck", "--data", data_file, "--model", "lstm", "--layers", "2",
                       "--batch-size", "2", "--entries", "10")
    assert proc.returncode == 0, proc.stderr
    assert "lstm 2 layers of 5, batch 2" in proc.stdout
    names = [line.split()[0] for line in proc.stdout.splitlines()
             if line.split()[:1] and line.split()[0] in expected_names("lstm", 2)]
    assert names == expected_names("lstm", 2)


# -- errors within the finite differences' rounding noise ----------------------------------------

@pytest.mark.e2e  # every entry of a 2-layer LSTM on the whole default corpus: the slowest check
def test_a_tiny_gradient_within_rounding_noise_does_not_fail_correct_code(backend):
    """`charrnn gradcheck --model lstm --layers 2 --batch-size 3` on the default corpus: one
    entry of Wx1 has a gradient of about 1e-6, and the rounding of the loss gives it a relative
    error of 3e-4 although the code is right. Its absolute error is within the noise, so the
    check passes and says why."""
    from charrnn.data import default_text

    default = Corpus.from_text(default_text(), "default")
    result = gc.gradient_check(backend, default.ids, default.vocab_size, "lstm", layers=2,
                               batch=3, entries=0)
    wx1 = result["params"]["Wx1"]
    assert wx1["rel"] > result["threshold"]  # the plain relative error would have failed
    assert wx1["within_noise"] >= 1 and wx1["abs"] <= result["noise"]
    assert result["passed"]
    assert gc.verdict(result).startswith(f"PASS: max relative error {wx1['rel']:.2e} in Wx1")
    assert "rounding noise" in gc.verdict(result)
    assert 1e-10 < result["noise"] < 1e-8  # float64: far below any gradient a bug disturbs


class OffByTinyGradient(NumpyBackend):
    """Adds 1e-6 to every entry of the scatter-added input gradient: small, but far above the
    rounding noise of float64 differences."""

    name = "offbytiny"

    def segment_sum(self, ids, values, out):
        result = super().segment_sum(ids, values, out)
        out += 1e-6
        return result


def test_a_small_wrong_gradient_above_the_noise_still_fails(corpus):
    result = gc.gradient_check(OffByTinyGradient("float64"), corpus.ids, corpus.vocab_size,
                               entries=0)
    assert not result["passed"], result["params"]["U"]
    assert gc.verdict(result).startswith("FAIL: max relative error")
    assert result["params"]["U"]["abs"] > 100 * result["noise"]


def test_a_long_check_says_so_before_it_starts(monkeypatch, tmp_path):
    """Legal but slow work is announced, not minutes of silence."""
    from charrnn.plugins import gradcheck
    from helpers import run_in_process

    monkeypatch.setattr(gradcheck, "LONG_CHECK_STEPS", 50)
    proc = run_in_process("gradcheck", "--hidden", 4, "--seq-length", 60, "--entries", 2,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("gradient check of rnn over 60 steps") and \
        "this takes a while" in proc.stderr
    monkeypatch.setattr(gradcheck, "LONG_CHECK_STEPS", 5_000)
    proc = run_in_process("gradcheck", "--hidden", 4, "--seq-length", 60, "--entries", 2,
                          cwd=tmp_path)
    assert proc.stderr == ""
