"""Updates per second: charrnn's NumPy backend against the classic per-time-step formulation.

Why this exists: charrnn's claim to speed on the CPU rests on writing the model once against
whole-sequence array operations (a row gather instead of one-hot products, one matrix product
per gradient instead of one per time step, one flat clip and one flat AdaGrad step instead of one
per parameter). The honest baseline for that claim is not some other library but the formulation
the course assignment starts from (Karpathy's min-char-rnn): dicts of per-step column vectors,
one-hot inputs and ``np.dot`` at every step. This script puts the two side by side in the same
process, on the same text, from the same initial weights, so that the ratio is a property of the
formulations and not of the machine, the corpus or the start.

Why it is built this way:

* charrnn is driven through its public objects, assembled by ``charrnn.assembly.build_trainer``
  assembles them (registry lookups for the backend, the ``rnn`` model and the optimizer, one
  ``TextStream`` of batch 1, ``Trainer``) but with no callbacks, and timed through
  ``Trainer.train_step``: the number is what a user of
  ``charrnn run`` gets for the updates themselves. ``build_trainer`` itself is not called because
  some callbacks (checkpoints, sampler) cannot be switched off through options, and this measures
  the update, not logging.
* The classic peer is written here, not imported, so that the reference cannot drift with the
  package it is checking.
* Repeats are interleaved (charrnn, classic, charrnn, classic, ...) so that a noisy neighbour, a
  frequency change or thermal throttling lands on both peers; the median of the per-repeat ratios
  is the figure least disturbed by that noise.
* A speed comparison is only meaningful if both peers do the same arithmetic. Before timing, the
  script checks that in lockstep: before each of the first updates the classic peer is handed
  charrnn's exact state (weights, AdaGrad memory, hidden state, position), both take one update,
  and their losses and new weights must agree to ``--tolerance``. A mismatch is printed and makes
  the script exit non-zero instead of being averaged away. Differences at the level of float64
  rounding are expected: the formulations add in a different order (``(Ux + Wh) + b`` against
  ``Wh + (Ux + b)``, a pairwise sum of the losses against a running one) and the classic softmax
  does not subtract the maximum logit.
* Why lockstep and not simply both peers free-running from the same weights: that was tried, and
  the loss difference grows about tenfold per update (3e-14, 0, 1e-12, 2e-11, 5e-10, ... 4e-8 at
  update 9), past 1e-9 by the sixth update. The cause is the training trajectory, not either
  formulation: AdaGrad's early step ``eta * g / sqrt(mem + eps)`` has a gain of up to
  ``eta / sqrt(eps) = 1e3`` on a gradient's rounding error while ``mem`` is tiny (at sigma 0.01
  the first gradients are ~5e-4, a median gain near 190), and the recurrence passes that on. The
  classic peer run against itself with one weight matrix moved by a single ulp diverges at the
  same rate. The free-running differences are still printed, next to that one-ulp control, so
  the growth is visible rather than hidden.
* The epoch wrap uses charrnn's condition (``p + T + 1 > n``) in both peers; min-char-rnn's
  ``>=`` drops the text's last possible window, which would make the peers drift apart at a wrap.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import charrnn
import numpy as np
from charrnn.data import Corpus, load_corpus
from charrnn.errors import CharrnnError
from charrnn import RunConfig
from charrnn.assembly import build_trainer
from charrnn.trainer import Trainer

#: The seed configuration of the course assignment.
HIDDEN = 100
SEQ_LENGTH = 25
ETA = 0.1
SIGMA = 0.01
CLIP = 5.0
SEED = 0
DTYPE = "float64"
SMOOTHING = 0.999

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


# -- the classic peer -----------------------------------------------------------------------------


class ClassicRNN:
    """min-char-rnn's training loop body, one update per :meth:`train_step`.

    Parameter names and shapes are min-char-rnn's: ``Wxh`` (m, K), ``Whh`` (m, m), ``Why`` (K, m),
    ``bh`` (m, 1), ``by`` (K, 1); inputs are one-hot columns (K, 1).
    """

    def __init__(self, ids: Sequence[int], vocab_size: int, params: Dict[str, np.ndarray],
                 seq_length: int = SEQ_LENGTH, eta: float = ETA) -> None:
        self.data: List[int] = [int(i) for i in ids]
        self.vocab_size = vocab_size
        self.seq_length = seq_length
        self.eta = eta
        self.Wxh = np.array(params["U"], dtype=np.float64)
        self.Whh = np.array(params["W"], dtype=np.float64)
        self.Why = np.array(params["V"], dtype=np.float64)
        self.bh = np.array(params["b"], dtype=np.float64).reshape(-1, 1)
        self.by = np.array(params["c"], dtype=np.float64).reshape(-1, 1)
        self.mWxh, self.mWhh, self.mWhy = (np.zeros_like(self.Wxh), np.zeros_like(self.Whh),
                                           np.zeros_like(self.Why))
        self.mbh, self.mby = np.zeros_like(self.bh), np.zeros_like(self.by)
        self.hprev = np.zeros_like(self.bh)
        self.p = 0
        self.n = 0
        self.smooth_loss = -np.log(1.0 / vocab_size) * seq_length

    def loss_fun(self, inputs: List[int], targets: List[int],
                 hprev: np.ndarray) -> Tuple[float, np.ndarray, np.ndarray, np.ndarray,
                                             np.ndarray, np.ndarray, np.ndarray]:
        """Forward and backward through one sequence, one time step at a time."""
        Wxh, Whh, Why, bh, by = self.Wxh, self.Whh, self.Why, self.bh, self.by
        vocab_size = self.vocab_size
        xs: Dict[int, np.ndarray] = {}
        hs: Dict[int, np.ndarray] = {}
        ys: Dict[int, np.ndarray] = {}
        ps: Dict[int, np.ndarray] = {}
        hs[-1] = np.copy(hprev)
        loss = 0.0
        for t in range(len(inputs)):
            xs[t] = np.zeros((vocab_size, 1))
            xs[t][inputs[t]] = 1
            hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
            ys[t] = np.dot(Why, hs[t]) + by
            ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))
            loss += -np.log(ps[t][targets[t], 0])
        dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
        dbh, dby = np.zeros_like(bh), np.zeros_like(by)
        dhnext = np.zeros_like(hs[0])
        for t in reversed(range(len(inputs))):
            dy = np.copy(ps[t])
            dy[targets[t]] -= 1
            dWhy += np.dot(dy, hs[t].T)
            dby += dy
            dh = np.dot(Why.T, dy) + dhnext
            dhraw = (1 - hs[t] * hs[t]) * dh
            dbh += dhraw
            dWxh += np.dot(dhraw, xs[t].T)
            dWhh += np.dot(dhraw, hs[t - 1].T)
            dhnext = np.dot(Whh.T, dhraw)
        for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
            np.clip(dparam, -CLIP, CLIP, out=dparam)
        return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]

    def train_step(self) -> float:
        """One update of min-char-rnn's main loop (without its sampling and printing)."""
        T = self.seq_length
        if self.p + T + 1 > len(self.data):
            self.hprev = np.zeros_like(self.bh)
            self.p = 0
        inputs = self.data[self.p : self.p + T]
        targets = self.data[self.p + 1 : self.p + T + 1]
        loss, dWxh, dWhh, dWhy, dbh, dby, self.hprev = self.loss_fun(inputs, targets, self.hprev)
        self.smooth_loss = self.smooth_loss * SMOOTHING + loss * (1 - SMOOTHING)
        for param, dparam, mem in zip([self.Wxh, self.Whh, self.Why, self.bh, self.by],
                                      [dWxh, dWhh, dWhy, dbh, dby],
                                      [self.mWxh, self.mWhh, self.mWhy, self.mbh, self.mby]):
            mem += dparam * dparam
            param += -self.eta * dparam / np.sqrt(mem + 1e-8)
        self.p += T
        self.n += 1
        return loss

    def params(self) -> Dict[str, np.ndarray]:
        """The parameters under charrnn's names and shapes, for comparison."""
        return {"U": self.Wxh, "W": self.Whh, "V": self.Why, "b": self.bh.ravel(),
                "c": self.by.ravel()}

    def load_state(self, params: Dict[str, np.ndarray], mem: Dict[str, np.ndarray],
                   hprev: np.ndarray, p: int) -> None:
        """Take over a state given under charrnn's names (for the lockstep check)."""
        pairs = (("U", self.Wxh, self.mWxh), ("W", self.Whh, self.mWhh),
                 ("V", self.Why, self.mWhy), ("b", self.bh, self.mbh), ("c", self.by, self.mby))
        for name, param, m in pairs:
            param[...] = np.reshape(params[name], param.shape)
            m[...] = np.reshape(mem[name], m.shape)
        self.hprev = np.array(hprev, dtype=np.float64).reshape(-1, 1)
        self.p = p


# -- the charrnn peer -----------------------------------------------------------------------------


def make_trainer(corpus: Corpus) -> Trainer:
    """charrnn at the seed configuration, built by ``build_trainer`` as ``charrnn.train``
    builds it, without the callbacks (the loop alone is timed)."""
    config = RunConfig(model="rnn", hidden=HIDDEN, seq_length=SEQ_LENGTH, batch_size=1,
                       optimizer="adagrad", eta=ETA, sigma=SIGMA, clip=CLIP, seed=SEED,
                       dtype=DTYPE, iterations=10**9)
    return build_trainer(config, corpus=corpus, plugins=False)


def hidden_state(trainer: Trainer) -> np.ndarray:
    """The one stream's hidden state, (m,): the rnn model's state is ``(h,)``, h (layers, B, m)."""
    return trainer.backend.to_numpy(trainer.state[0]).reshape(-1).copy()


def adagrad_memory(trainer: Trainer) -> Dict[str, np.ndarray]:
    """charrnn's flat AdaGrad memory split by parameter (it is laid out like the parameters)."""
    return trainer.model.split_flat(trainer.optimizer.state_dict()["mem"])


def max_param_diff(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray]) -> float:
    return max(float(np.max(np.abs(np.asarray(a[k]) - np.asarray(b[k])))) for k in a)


def make_peers(corpus: Corpus) -> Tuple[Trainer, ClassicRNN]:
    """A charrnn trainer and a classic peer on the same ids, from the same initial weights."""
    trainer = make_trainer(corpus)
    classic = ClassicRNN(corpus.ids, corpus.vocab_size, trainer.model.get_params())
    return trainer, classic


# -- measuring ------------------------------------------------------------------------------------


def time_updates(step: Callable[[], Any], n: int, sync: Callable[[], None]) -> float:
    """Updates per second over ``n`` calls of ``step``."""
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    sync()
    return n / (time.perf_counter() - t0)


def no_sync() -> None:
    pass


def lockstep_check(corpus: Corpus, updates: int, tolerance: float) -> Dict[str, Any]:
    """Same state in, one update each, compare: the check that both peers compute the same math."""
    trainer, classic = make_peers(corpus)
    rows = []
    param_diff = 0.0
    for i in range(updates):
        classic.load_state(trainer.model.get_params(), adagrad_memory(trainer),
                           hidden_state(trainer), trainer.stream.position)
        a = trainer.backend.to_float(trainer.train_step())
        b = float(classic.train_step())
        param_diff = max(param_diff, max_param_diff(trainer.model.get_params(), classic.params()))
        rows.append({"update": i + 1, "charrnn": a, "classic": b, "abs_diff": abs(a - b)})
    max_diff = max(r["abs_diff"] for r in rows)
    ok = math.isfinite(max_diff) and max_diff <= tolerance and param_diff <= tolerance
    return {"updates": updates, "tolerance": tolerance, "losses": rows,
            "max_abs_loss_diff": max_diff, "max_abs_param_diff": param_diff, "ok": bool(ok)}


def free_running_check(corpus: Corpus, updates: int) -> Dict[str, Any]:
    """Both peers from the same weights, left alone; beside them, a one-ulp control.

    The control is the classic peer against a copy whose ``W`` (min-char-rnn's ``Whh``) starts one
    ulp higher: how fast the training trajectory itself amplifies a rounding-sized difference.
    """
    trainer, classic = make_peers(corpus)
    start = trainer.model.get_params()
    nudged = {k: (np.nextafter(v, np.inf) if k == "W" else v) for k, v in start.items()}
    control = ClassicRNN(corpus.ids, corpus.vocab_size, nudged)
    rows = []
    for i in range(updates):
        a = trainer.backend.to_float(trainer.train_step())
        b = float(classic.train_step())
        c = float(control.train_step())
        rows.append({"update": i + 1, "charrnn": a, "classic": b, "abs_diff": abs(a - b),
                     "control_abs_diff": abs(b - c)})
    return {"updates": updates, "losses": rows,
            "max_abs_loss_diff": max(r["abs_diff"] for r in rows),
            "max_control_abs_diff": max(r["control_abs_diff"] for r in rows),
            "max_abs_param_diff": max_param_diff(trainer.model.get_params(), classic.params())}


def sanity_check(corpus: Corpus, updates: int, tolerance: float) -> Dict[str, Any]:
    lockstep = lockstep_check(corpus, updates, tolerance)
    return {"ok": lockstep["ok"], "lockstep": lockstep,
            "free_running": free_running_check(corpus, updates)}


def summarise(rates: List[float]) -> Dict[str, float]:
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def run_benchmark(corpus: Corpus, warmup: int, repeats: int, updates: int) -> Dict[str, Any]:
    trainer, classic = make_peers(corpus)
    sync = trainer.backend.synchronize
    time_updates(trainer.train_step, warmup, sync)
    time_updates(classic.train_step, warmup, no_sync)
    a_rates: List[float] = []
    b_rates: List[float] = []
    for _ in range(repeats):
        a_rates.append(time_updates(trainer.train_step, updates, sync))
        b_rates.append(time_updates(classic.train_step, updates, no_sync))
    ratios = [a / b for a, b in zip(a_rates, b_rates)]
    a_sum, b_sum = summarise(a_rates), summarise(b_rates)
    done = warmup + repeats * updates
    return {
        "charrnn": {**a_sum, "rates": a_rates},
        "classic": {**b_sum, "rates": b_rates},
        "ratio_median_of_ratios": statistics.median(ratios),
        "ratio_of_medians": a_sum["median"] / b_sum["median"],
        "ratios": ratios,
        # Informational only: the free-running check shows the trajectories part within ~20
        # updates, so these two are independent runs of the same training, not a comparison.
        "after_timing": {
            "updates": done,
            "charrnn_smooth_loss": trainer.smooth_loss_value(),
            "classic_smooth_loss": float(classic.smooth_loss),
            "charrnn_epochs_wrapped": trainer.epoch,
        },
    }


# -- reporting ------------------------------------------------------------------------------------


def print_report(result: Dict[str, Any]) -> None:
    cfg, env = result["config"], result["environment"]
    check, bench = result["sanity"], result["benchmark"]
    print(f"charrnn {env['charrnn']}, numpy {env['numpy']}, Python {env['python']}, "
          f"{env['machine']}")
    print(f"text: {cfg['data']} ({cfg['characters']:,} characters, K={cfg['vocab_size']})")
    print(f"config: hidden {cfg['hidden']}, sequence {cfg['seq_length']}, batch 1, AdaGrad eta "
          f"{cfg['eta']}, {cfg['dtype']}, sigma {cfg['sigma']}, clip +-{cfg['clip']}")
    print(f"method: {cfg['warmup']} warm-up updates each, then {cfg['repeats']} interleaved "
          f"repeats of {cfg['updates']:,} updates per peer")
    print()
    lock, free = check["lockstep"], check["free_running"]
    status = "OK" if check["ok"] else "MISMATCH"
    print(f"sanity check, lockstep (classic handed charrnn's exact state before each of "
          f"{lock['updates']} updates): {status}")
    print(f"  max |loss diff| {lock['max_abs_loss_diff']:.1e}, max |weight diff| after the update "
          f"{lock['max_abs_param_diff']:.1e} (tolerance {lock['tolerance']:.0e})")
    print("free-running from the same initial weights (informational; control: classic vs "
          "classic with W one ulp higher):")
    for row in free["losses"]:
        print(f"  update {row['update']:>3}: loss {row['charrnn']:.9f} vs {row['classic']:.9f}"
              f"  |diff| {row['abs_diff']:.1e}  control {row['control_abs_diff']:.1e}")
    print("  the control column is how fast training itself amplifies a rounding-sized difference "
          "(AdaGrad's early gain eta/sqrt(mem+eps) reaches 1e3)")
    print()
    print(f"{'peer':<22}{'median upd/s':>14}{'min':>10}{'max':>10}")
    for key, label in (("charrnn", "charrnn numpy backend"), ("classic", "classic one-hot")):
        s = bench[key]
        print(f"{label:<22}{s['median']:>14,.0f}{s['min']:>10,.0f}{s['max']:>10,.0f}")
    print()
    print(f"speed-up charrnn/classic: {bench['ratio_median_of_ratios']:.2f}x (median of per-repeat "
          f"ratios, range {min(bench['ratios']):.2f}-{max(bench['ratios']):.2f}), "
          f"{bench['ratio_of_medians']:.2f}x (ratio of medians)")
    after = bench["after_timing"]
    print(f"after {after['updates']:,} updates each, smooth loss: charrnn "
          f"{after['charrnn_smooth_loss']:.6f}, classic {after['classic_smooth_loss']:.6f} "
          f"(informational: the trajectories decorrelated long before)")
    if not check["ok"]:
        print()
        print("WARNING: given the same state, the peers' losses or weights disagree beyond "
              f"{check['lockstep']['tolerance']:.0e}; the speed comparison is not of the same "
              "computation.")


def resolve_data(path: Optional[str]) -> Optional[str]:
    """``None`` (charrnn's embedded corpus, what ``charrnn run`` trains on) unless a file is given."""
    return None if path in (None, "default") else path


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None,
                        help="text file to train on [default: charrnn's embedded corpus, as "
                             f"`charrnn run` uses; e.g. {DEFAULT_DATA} for Shakespeare]")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per peer")
    parser.add_argument("--updates", type=int, default=2000, help="updates per timed repeat")
    parser.add_argument("--warmup", type=int, default=200, help="untimed updates per peer first")
    parser.add_argument("--check-updates", type=int, default=10,
                        help="updates compared in the sanity checks")
    parser.add_argument("--tolerance", type=float, default=1e-9,
                        help="largest allowed |loss| and |weight| difference in the lockstep check")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    for name in ("repeats", "updates", "check_updates"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    data = resolve_data(args.data)
    try:
        corpus = load_corpus(data, "utf-8", SEQ_LENGTH)
    except CharrnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result: Dict[str, Any] = {
        "config": {"data": corpus.source, "characters": len(corpus.text),
                   "vocab_size": corpus.vocab_size, "hidden": HIDDEN, "seq_length": SEQ_LENGTH,
                   "batch": 1, "eta": ETA, "sigma": SIGMA, "clip": CLIP, "dtype": DTYPE,
                   "seed": SEED, "warmup": args.warmup, "repeats": args.repeats,
                   "updates": args.updates},
        "environment": {"charrnn": charrnn.__version__, "numpy": np.__version__,
                        "python": platform.python_version(),
                        "machine": f"{platform.machine()} {platform.system()}"},
    }
    result["sanity"] = sanity_check(corpus, args.check_updates, args.tolerance)
    result["benchmark"] = run_benchmark(corpus, args.warmup, args.repeats, args.updates)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0 if result["sanity"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
