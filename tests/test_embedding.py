"""``--embedding N``: the gated models read characters through a learned table of N dimensions
(torch-rnn's ``wordvec_size``). Its gradients are checked, it is saved with the model, a run
with it resumes and samples, and the vanilla RNN refuses it."""
from __future__ import annotations

import numpy
import pytest

import charrnn
from charrnn.backends.numpy_backend import NumpyBackend
from charrnn.plugins.gradcheck import gradient_check


@pytest.fixture(scope="module")
def corpus():
    from charrnn.data import load_corpus

    return load_corpus(None, "utf-8", 25)


@pytest.mark.parametrize("model", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_the_embedding_and_everything_above_it_pass_the_gradient_check(corpus, model, layers):
    result = gradient_check(NumpyBackend("float64"), numpy.asarray(corpus.ids), corpus.vocab_size,
                            model=model, hidden=8, layers=layers, batch=2, seq_length=6,
                            embedding=5, entries=30)
    assert result["passed"], result
    assert result["options"]["embedding"] == 5
    checked = set(result["params"])
    assert "E" in checked and ("Wx" in checked or "Wx1" in checked)


def test_the_table_replaces_the_one_hot_input_weights():
    from charrnn.models.gru import GRU

    plain = GRU.param_shapes(65, hidden=32, layers=2)
    embedded = GRU.param_shapes(65, hidden=32, layers=2, embedding=16)
    assert "E" not in plain and plain["Wx1"] == (65, 96)
    assert embedded["E"] == (65, 16) and embedded["Wx1"] == (16, 96)
    model = GRU(NumpyBackend("float64"), 65, hidden=32, layers=2, embedding=16)
    assert model.char_axes() == {"E": 0}
    assert model.options() == {"hidden": 32, "layers": 2, "embedding": 16}
    assert "embedding 16" in model.describe()


def test_a_run_with_an_embedding_saves_resumes_and_samples(tmp_path, corpus):
    data = tmp_path / "text.txt"
    data.write_text(corpus.text[:20_000], encoding="utf-8")
    options = dict(data=str(data), model="gru", hidden=16, batch_size=4, seq_length=16,
                   optimizer="adam", embedding=8, quiet=True, plot=False)
    first = charrnn.train(iterations=30, out=str(tmp_path / "run"), **options)
    assert first.config["embedding"] == 8
    again = charrnn.train(iterations=60, resume=first.directory, **options)
    assert again.updates == 60 and again.session_updates == 30
    loaded = charrnn.load(first.directory)
    assert loaded.model.embedding == 8 and loaded.model.shapes["E"] == (loaded.model.K, 8)
    text = loaded.sample(40, seed=1)
    assert len(text) == 40


def test_the_vanilla_rnn_refuses_an_embedding():
    from charrnn.errors import CharrnnError
    from charrnn.models.rnn import RNN

    with pytest.raises(CharrnnError, match="drop --embedding"):
        RNN(NumpyBackend("float64"), 20, hidden=8, embedding=4)


def test_charrnn_gradcheck_checks_an_embedding(tmp_path):
    from helpers import charrnn_cmd

    proc = charrnn_cmd("gradcheck", "--model", "gru", "--embedding", "6", "--hidden", "8",
                       "--batch-size", "2", "--seq-length", "6", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "gru hidden 8, embedding 6, batch 2" in proc.stdout
    assert any(line.split()[:1] == ["E"] for line in proc.stdout.splitlines()), proc.stdout
