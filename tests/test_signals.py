"""Ctrl-C and SIGTERM sent at random updates of real runs, each resumed to the end and compared
bit for bit with the uninterrupted run: 30 trials, two models (end-to-end tier; the planted and
random faults of ``tests/test_faults.py`` share its launcher and helpers)."""
from __future__ import annotations

import concurrent.futures
import random
import signal
import subprocess
import sys

import pytest
from helpers import TEXT, charrnn_cmd
from test_faults import (ITERATIONS, LAUNCHER, OPTIONS, _args, _default_sigint, _env,
                         assert_matches_reference, recover)

#: End-to-end tier (real processes signalled mid-run): `python -m pytest -m e2e`.
pytestmark = pytest.mark.e2e

#: The second model of the signal trials: stacked, batched, with dropout (a random stream in
#: every update) and Adam (two moments of optimizer state).
LSTM_OPTIONS = ("--model", "lstm", "--layers", 2, "--batch-size", 2, "--dropout", 0.2,
                "--optimizer", "adam", *OPTIONS)
#: No signal point is in the loss plot (test_faults.py kills and interrupts it), and drawing it
#: is most of what a trial's processes would do.
NO_PLOT = ("--no-plot",)
SIGNAL_TRIALS = 15  # per model: 30 in all, Ctrl-C and SIGTERM alternating


#: Steps of an update a signal is sent from, in the process (module, attribute): reading the
#: text, the forward and backward pass, the optimizer, and the callbacks after the update.
SIGNAL_POINTS = {
    "rnn": [("charrnn.stream", "TextStream.next"), ("charrnn.models.rnn", "RNN.loss_and_grads"),
            ("charrnn.optimizers.adagrad", "AdaGrad.step")],
    "lstm": [("charrnn.stream", "TextStream.next"),
             ("charrnn.models.gated", "GatedRNN.loss_and_grads"),
             ("charrnn.optimizers.adam", "Adam.step")],
    "both": [("charrnn.plugins.sampler", "Sampler.on_update_end"),
             ("charrnn.metrics", "MetricsLog.on_update_end"),
             ("charrnn.plugins.checkpointing", "Checkpoints.on_update_end")],
}


@pytest.mark.parametrize("model", ["rnn", "lstm"])
def test_sigint_and_sigterm_at_random_moments_resume_bit_for_bit(tmp_path, model):
    """Ctrl-C or SIGTERM at a random update (drawn with a fixed seed), sent by the process to
    itself from inside a random step of it: every trial stops in training, saves one whole
    update, and, resumed, ends exactly as the uninterrupted run. The moment is chosen by update,
    not by clock, so a loaded machine changes nothing (``test_sigkill_...`` and
    ``test_sigint_at_random_...`` send theirs from outside, after random delays)."""
    options = (OPTIONS if model == "rnn" else LSTM_OPTIONS) + NO_PLOT
    data = tmp_path / "text.txt"
    data.write_text(TEXT * 6, encoding="utf-8")
    (tmp_path / "launcher.py").write_text(LAUNCHER, encoding="utf-8")
    reference = tmp_path / "reference"
    proc = charrnn_cmd(*_args(data, reference, options), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rng = random.Random(20261204 + len(options))
    points = SIGNAL_POINTS[model] + SIGNAL_POINTS["both"]
    plan = [(rng.choice(points), rng.randrange(1, ITERATIONS), ("interrupt", "terminate")[i % 2])
            for i in range(SIGNAL_TRIALS)]

    def trial(i: int) -> None:
        (module, attr), at, action = plan[i]
        label = f"{action}-{i}-{attr}-{at}"
        out = tmp_path / label
        outcome = subprocess.run([sys.executable, str(tmp_path / "launcher.py"), module, attr,
                                  str(at), action, *_args(data, out, options)],
                                 cwd=str(tmp_path), env=_env(), capture_output=True, text=True,
                                 timeout=120, preexec_fn=_default_sigint)
        sig = signal.SIGINT if action == "interrupt" else signal.SIGTERM
        assert outcome.returncode == 128 + sig, (label, outcome.stdout, outcome.stderr)
        assert "stopped (interrupted)" in outcome.stdout, (label, outcome.stdout)
        assert "continue with: charrnn run --resume" in outcome.stderr, (label, outcome.stderr)
        recover(data, out, options)
        assert_matches_reference(out, reference, label, plotted=False)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(trial, i) for i in range(SIGNAL_TRIALS)]:
            future.result()
