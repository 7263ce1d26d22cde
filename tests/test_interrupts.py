"""Ctrl-C and SIGTERM at any point of an update end in a checkpoint of one whole update.

An update advances the text position, draws dropout masks, changes the parameters and the
optimizer's memory, then its callbacks write a metrics row, a sample and a checkpoint. A signal
is sent from inside each of those steps in turn, in this process, through the real launcher and
the real signal handlers; the run stops, saves, and ``--resume`` must then end exactly where the
uninterrupted run ends: the same parameters, optimizer memory, text position, metrics rows and
samples. (``tests/test_faults.py`` sends the signals from outside, at random moments, in the
end-to-end tier.)
"""
from __future__ import annotations

import functools
import os
import signal
from pathlib import Path
from typing import Dict

import numpy
import pytest
from charrnn.checkpoint import load_checkpoint
from helpers import TEXT, run_in_process

ITERATIONS = 60
COMMON = ("--seq-length", 10, "--iterations", ITERATIONS, "--checkpoint-every", 20,
          "--log-every", 5, "--sample-every", 10, "--sample-length", 30, "--no-gradcheck",
          "--no-plot", "--no-report", "--quiet")
MODELS = {
    "rnn": ("--hidden", 12),
    "lstm": ("--model", "lstm", "--hidden", 12, "--layers", 2, "--batch-size", 2,
             "--dropout", 0.3, "--optimizer", "adam"),
}
#: Where the signal is sent from, per model: (module, class, method), each a step of every
#: update, from reading the text to the callbacks after it.
POINTS = {
    "text-stream": {"rnn": ("charrnn.stream", "TextStream", "next"),
                    "lstm": ("charrnn.stream", "TextStream", "next")},
    "model": {"rnn": ("charrnn.models.rnn", "RNN", "loss_and_grads"),
              "lstm": ("charrnn.models.gated", "GatedRNN", "loss_and_grads")},
    "optimizer": {"rnn": ("charrnn.optimizers.adagrad", "AdaGrad", "step"),
                  "lstm": ("charrnn.optimizers.adam", "Adam", "step")},
    "sampler": {m: ("charrnn.plugins.sampler", "Sampler", "on_update_end") for m in MODELS},
    "metrics": {m: ("charrnn.metrics", "MetricsLog", "on_update_end") for m in MODELS},
    "checkpoint": {m: ("charrnn.plugins.checkpointing", "Checkpoints", "on_update_end")
                   for m in MODELS},
}


def _run(cwd: Path, *args):
    return run_in_process(*map(str, args), cwd=cwd)


def _outcome(run_dir: Path) -> Dict[str, object]:
    """What an exact resume must reproduce: the final checkpoint's arrays and position, the
    metrics rows (without the speed column) and the samples."""
    ckpt = load_checkpoint(str(run_dir / "latest.npz"))
    rows = (run_dir / "metrics.csv").read_text(encoding="utf-8").splitlines()
    return {
        "update": ckpt.meta["update"], "position": ckpt.meta["position"],
        "params": {k: v.tobytes() for k, v in ckpt.params.items()},
        "optimizer": {k: numpy.asarray(v).tobytes() for k, v in ckpt.optimizer.items()
                      if isinstance(v, numpy.ndarray)},
        "state": [s.tobytes() for s in ckpt.state],
        "metrics": [",".join(r.split(",")[:-1]) for r in rows],
        "samples": (run_dir / "samples.md").read_text(encoding="utf-8"),
    }


@pytest.fixture(autouse=True)
def _python_handles_ctrl_c():
    """Python's own SIGINT handler, as a program started from a terminal has it: a test run
    started in the background inherits SIGINT ignored, and an ignored signal stays ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted runs, one per model."""
    root = tmp_path_factory.mktemp("reference")
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    outcomes = {}
    for model, options in MODELS.items():
        proc = _run(root, "run", "--data", root / "text.txt", *options, *COMMON,
                    "--out", root / model)
        assert proc.returncode == 0, proc.stderr
        outcomes[model] = _outcome(root / model)
    return root, outcomes


class _Updates:
    """The update in progress (its number once done), kept by a wrapper of train_step."""
    current = 0


def _signal_at(monkeypatch, model: str, point: str, update: int, signum: int) -> list:
    """Send ``signum`` to this process from inside ``point`` during update ``update``."""
    import importlib

    from charrnn.trainer import Trainer

    train_step = Trainer.train_step

    def counting_train_step(self):
        _Updates.current = self.update + 1
        return train_step(self)

    monkeypatch.setattr(Trainer, "train_step", counting_train_step)
    module, cls_name, method = POINTS[point][model]
    cls = getattr(importlib.import_module(module), cls_name)
    original = getattr(cls, method)
    sent: list = []

    @functools.wraps(original)
    def wrapper(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if not sent and _Updates.current == update:
            sent.append(update)
            os.kill(os.getpid(), signum)  # handled at the next bytecode, inside this step
        return result

    monkeypatch.setattr(cls, method, wrapper)
    return sent


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("point", list(POINTS))
@pytest.mark.parametrize("model", list(MODELS))
def test_a_signal_anywhere_in_an_update_resumes_exactly(reference, tmp_path, monkeypatch, model,
                                                        point, signame):
    root, outcomes = reference
    signum = getattr(signal, signame)
    at = 33 if point != "checkpoint" else 40  # mid-interval, or the update that checkpoints
    sent = _signal_at(monkeypatch, model, point, at, signum)
    run = tmp_path / "run"
    proc = _run(tmp_path, "run", "--data", root / "text.txt", *MODELS[model], *COMMON,
                "--out", run)
    assert sent, "the signal was never sent"
    assert proc.returncode == 128 + signum, proc.stdout + proc.stderr
    assert "continue with: charrnn run --resume" in proc.stderr
    saved = load_checkpoint(str(run / "latest.npz"))
    assert saved.meta["update"] == at, saved.meta["update"]

    monkeypatch.undo()
    proc = _run(tmp_path, "run", "--resume", run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _outcome(run) == outcomes[model]
