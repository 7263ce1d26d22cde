"""The built-in presets (``charrnn run --preset NAME``), registered as a third party's would be.

Each is the measured best of its kind on the 2-core CPU the project is measured on; the figures
are in the README and reproduced by ``benchmarks/race.py``.
"""
from __future__ import annotations

from charrnn import hookimpl
from charrnn.presets import Preset

#: The course's configuration, spelled out: what ``charrnn run`` does with no options.
COURSE = Preset(
    "course",
    "--model rnn --hidden 100 --seq-length 25 --batch-size 1 --optimizer adagrad --eta 0.1 "
    "--clip 5 --dtype float64",
    help="The course's vanilla RNN (the defaults, spelled out).",
)

#: The recipe that reaches the lowest validation loss in two minutes of CPU training
#: (``benchmarks/race.py``; the runs behind each choice are in the README): a GRU of 2 x 256,
#: which learns faster per second than an LSTM of that width; batches of 32 x 32, twice the
#: updates of 32 x 64 in the same time; float32; Adam at 3x PyTorch's default rate (8e-3 did a
#: little better once, 1.2e-2 diverged), decayed along a cosine to a tenth; the gradient norm
#: clipped at 5.
QUICK = Preset(
    "quick",
    "--model gru --layers 2 --hidden 256 --batch-size 32 --seq-length 32 --dtype float32 "
    "--optimizer adam --eta 6e-3 --lr-schedule cosine --clip 0 --clip-norm 5 "
    "--val-frac 0.1 --time-limit 120",
    help="The best text in two minutes on a CPU: GRU 2x256, batch 32 x 32, Adam with a cosine "
         "decay, 10% held out (a larger --time-limit gives better text).",
)


@hookimpl
def register_presets(register):
    register(COURSE)
    register(QUICK)
