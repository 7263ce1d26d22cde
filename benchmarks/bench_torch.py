"""Updates per second: charrnn (CuPy or NumPy backend) against PyTorch's ``torch.nn.RNN``.

Why this exists: the question a GPU user asks is whether charrnn's CuPy backend is worth using
at the seed configuration (hidden 100, sequence 25, batch 1, AdaGrad), where every update is a
chain of tiny kernels, next to the obvious alternative (the same model in PyTorch, cuDNN's RNN on
CUDA) and next to charrnn's own NumPy backend on the same machine's CPU. This script puts those
peers in one process, on the same text, from the same initial weights, so that the ratios are a
property of the implementations and not of the machine, the corpus or the start.

Why it is built this way:

* charrnn is driven through its public objects, assembled as ``benchmarks/bench_numpy.py``'s
  ``make_trainer`` assembles them (``make_backend``, ``make_model("rnn", ...)``,
  ``make_optimizer``, a ``TextStream`` of batch 1, a ``Trainer`` with no callbacks), and timed
  through ``Trainer.train_step``: what ``charrnn run`` does for the updates themselves, without
  logging.
* The PyTorch peer is the idiomatic one: ``torch.nn.RNN`` (tanh, one layer, batch 1; cuDNN on
  CUDA), a ``Linear`` output layer, ``cross_entropy`` summed over the 25 steps, ``backward``,
  ``clip_grad_value_(5)`` and ``torch.optim.Adagrad(lr=0.1, eps=1e-8)``, the hidden state detached
  and carried, reset at the same epoch wrap (``p + T + 1 > n``). The input is the identity
  embedding (``F.embedding(ids, eye(K))``: one gather kernel, no host sync); ``--torch-input
  onehot`` times ``F.one_hot(ids, K).to(dtype)`` (zeros + scatter + cast) instead. Both give the
  RNN the same one-hot rows, so both are the same math. ``bias_hh_l0`` is held at zero and not
  trained: charrnn has one hidden bias, and training both of torch's would move it twice as fast.
* Both peers are measured the same way: nothing is read to the host inside timed updates (each
  keeps its loss and a smooth loss on its device, as ``Trainer.train_step`` does, and both are
  read once at the end; torch's smooth loss is one in-place ``lerp_``), and the device is
  synchronised (``backend.synchronize()``,
  ``torch.cuda.synchronize()``) before the clock is read, so queued GPU work is counted.
* Repeats are interleaved (charrnn, torch, charrnn-numpy, charrnn, ...) so that a noisy neighbour,
  a clock change or thermal throttling lands on every peer; the median of per-repeat ratios is the
  figure least disturbed by that noise.
* A speed comparison means something only if the peers do the same arithmetic. Before timing,
  torch's modules are given charrnn's initial weights (``weight_ih_l0 = U``, ``weight_hh_l0 = W``,
  ``bias_ih_l0 = b``, ``bias_hh_l0 = 0``, ``Linear.weight = V``, ``Linear.bias = c``), each peer
  takes one update, and the losses, the clipped gradients, the new hidden states and the new
  weights (against each peer's own AdaGrad rule applied to charrnn's gradients) must agree to
  ``--tolerance`` (1e-9 in float64), as must the second loss of a twin handed charrnn's weights
  after the first update; a mismatch makes the script exit non-zero. Left alone, the peers part
  by more than rounding from the second update on, by design: torch's Adagrad puts eps outside
  the square root (``g / (sqrt(G) + eps)``, charrnn ``g / sqrt(G + eps)``), which costs the same
  but takes different steps while ``G`` is tiny. That free-running difference is printed so that
  it is visible rather than hidden.
* torch is optional: without it the script says so in one line and still measures charrnn.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import charrnn
import numpy as np
from charrnn.backends.cupy_backend import CupyBackend
from charrnn.data import Corpus, load_corpus
from charrnn.errors import BackendUnavailable, CharrnnError
from charrnn import RunConfig
from charrnn.assembly import build_trainer, make_backend
from charrnn.trainer import Trainer

#: The seed configuration of the course assignment.
HIDDEN = 100
SEQ_LENGTH = 25
ETA = 0.1
EPS = 1e-8
SIGMA = 0.01
CLIP = 5.0
SEED = 0
SMOOTHING = 0.999
#: Default largest |difference| allowed in the first-update check, per dtype. A float32 loss of
#: ~116 has an ulp of ~8e-6 and sums 25 terms computed in different orders.
TOLERANCE = {"float64": 1e-9, "float32": 1e-3}


# -- the charrnn peers ----------------------------------------------------------------------------


def make_trainer(corpus: Corpus, backend_name: str, dtype: str) -> Trainer:
    """charrnn at the seed configuration, built by ``build_trainer`` as ``charrnn.train``
    builds it, without the callbacks (the loop alone is timed)."""
    config = RunConfig(backend=backend_name, model="rnn", hidden=HIDDEN, seq_length=SEQ_LENGTH,
                       batch_size=1, optimizer="adagrad", eta=ETA, sigma=SIGMA, clip=CLIP,
                       seed=SEED, dtype=dtype, iterations=10**9)
    return build_trainer(config, corpus=corpus, plugins=False)


def hidden_state(trainer: Trainer) -> np.ndarray:
    """The one stream's hidden state, (m,): the rnn model's state is ``(h,)``, h (layers, B, m)."""
    return trainer.backend.to_numpy(trainer.state[0]).reshape(-1).copy()


# -- the PyTorch peer -----------------------------------------------------------------------------


class TorchPeer:
    """The same model in PyTorch, one update per :meth:`train_step`."""

    def __init__(self, torch: Any, ids: np.ndarray, vocab_size: int,
                 params: Dict[str, np.ndarray], dtype: str, device: str, input_mode: str) -> None:
        self.torch = torch
        self.F = torch.nn.functional
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        self.K, self.m, self.T = vocab_size, HIDDEN, SEQ_LENGTH
        factory = {"device": self.device, "dtype": self.dtype}
        # The text on the device as int64 ids, as an embedding, one_hot and cross_entropy want.
        self.ids = torch.from_numpy(np.asarray(ids, dtype=np.int64)).to(self.device)
        self.n = int(self.ids.shape[0])
        self.rnn = torch.nn.RNN(self.K, self.m, num_layers=1, nonlinearity="tanh", bias=True,
                                **factory)
        self.out = torch.nn.Linear(self.m, self.K, **factory)
        with torch.no_grad():
            for param, value in ((self.rnn.weight_ih_l0, params["U"]),
                                 (self.rnn.weight_hh_l0, params["W"]),
                                 (self.rnn.bias_ih_l0, params["b"]),
                                 (self.out.weight, params["V"]),
                                 (self.out.bias, params["c"])):
                param.copy_(torch.as_tensor(np.asarray(value)))
            self.rnn.bias_hh_l0.zero_()
        # charrnn has one hidden bias: keep torch's second one at zero rather than train both.
        self.rnn.bias_hh_l0.requires_grad_(False)
        self.rnn.flatten_parameters()  # cuDNN's single weight buffer on CUDA; a no-op elsewhere
        self.params = [p for p in (*self.rnn.parameters(), *self.out.parameters())
                       if p.requires_grad]
        self.optimizer = torch.optim.Adagrad(self.params, lr=ETA, eps=EPS)
        self.input_mode = input_mode
        self.eye = torch.eye(self.K, **factory)
        self.h = torch.zeros(1, 1, self.m, **factory)
        self.position = 0
        self.epoch = 0
        self.loss: Any = None
        self.smooth_loss = torch.tensor(SEQ_LENGTH * math.log(self.K), **factory)

    def inputs(self, x: Any) -> Any:
        """(T, 1, K) one-hot rows for the ids ``x``."""
        if self.input_mode == "embedding":
            return self.F.embedding(x, self.eye).unsqueeze(1)
        return self.F.one_hot(x, self.K).to(self.dtype).unsqueeze(1)

    def train_step(self) -> Any:
        """One update. Returns the loss as a device tensor; nothing is read to the host."""
        T = self.T
        if self.position + T + 1 > self.n:
            self.position = 0
            self.epoch += 1
            self.h = self.torch.zeros_like(self.h)
        p = self.position
        x = self.ids[p : p + T]
        y = self.ids[p + 1 : p + T + 1]
        hs, h_last = self.rnn(self.inputs(x), self.h)
        logits = self.out(hs.view(T, self.m))
        loss = self.F.cross_entropy(logits, y, reduction="sum")
        self.optimizer.zero_grad()
        loss.backward()
        self.torch.nn.utils.clip_grad_value_(self.params, CLIP)
        self.optimizer.step()
        self.h = h_last.detach()
        self.position = p + T
        self.loss = loss.detach()
        # The bookkeeping Trainer.train_step does too, on the device: 0.999 s + 0.001 loss.
        self.smooth_loss.lerp_(self.loss, 1.0 - SMOOTHING)
        return self.loss

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def uses_cudnn(self) -> bool:
        """Whether nn.RNN takes cuDNN for these inputs: its own test, ``cudnn_is_acceptable``."""
        x = self.inputs(self.ids[: self.T])
        return bool(self.torch.cudnn_is_acceptable(x))

    def named(self) -> Dict[str, Any]:
        """The trained parameters under charrnn's names (the mapping the sanity check verifies)."""
        return {"U": self.rnn.weight_ih_l0, "W": self.rnn.weight_hh_l0, "b": self.rnn.bias_ih_l0,
                "V": self.out.weight, "c": self.out.bias}

    def grads(self) -> Dict[str, np.ndarray]:
        """The (clipped) gradients of the last update under charrnn's names."""
        return {name: p.grad.detach().cpu().numpy() for name, p in self.named().items()}

    def set_params(self, params: Dict[str, np.ndarray]) -> None:
        with self.torch.no_grad():
            for name, p in self.named().items():
                p.copy_(self.torch.as_tensor(np.asarray(params[name])))

    def get_params(self) -> Dict[str, np.ndarray]:
        """The parameters under charrnn's names; raises if ``bias_hh_l0`` left zero."""
        if bool(self.rnn.bias_hh_l0.detach().abs().max().item() != 0):
            raise AssertionError("torch's bias_hh_l0 moved; it must stay at zero")
        return {name: p.detach().cpu().numpy().copy() for name, p in self.named().items()}

    def hidden(self) -> np.ndarray:
        return self.h.detach().cpu().numpy().reshape(-1)


def import_torch() -> tuple[Any, Optional[str]]:
    """``(torch, None)``, or ``(None, why)`` when torch cannot be imported here."""
    try:
        import torch
    except ModuleNotFoundError as exc:
        if (exc.name or "torch").split(".")[0] == "torch":
            return None, (f"torch is not installed in this Python ({sys.executable}); "
                          "skipping the PyTorch peer (pip install torch to add it)")
        return None, f"torch could not be imported ({exc}); skipping the PyTorch peer"
    except Exception as exc:  # a broken install: missing shared libraries and the like
        return None, (f"torch could not be imported ({type(exc).__name__}: {exc}); "
                      "skipping the PyTorch peer")
    return torch, None


def resolve_torch_device(torch: Any, requested: Optional[str]) -> str:
    if requested is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
        torch.zeros(1, device=device)
    except Exception as exc:
        raise CharrnnError(f"--torch-device {requested} cannot be used here ({exc}); "
                           "pass cpu, or cuda on a machine with a CUDA GPU") from None
    return requested


# -- measuring ------------------------------------------------------------------------------------


def time_updates(step: Callable[[], Any], n: int, sync: Callable[[], None]) -> float:
    """Updates per second over ``n`` calls of ``step``, queued device work included."""
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    sync()
    return n / (time.perf_counter() - t0)


def summarise(rates: List[float]) -> Dict[str, float]:
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def max_abs_diff(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray]) -> float:
    return max(float(np.max(np.abs(np.asarray(a[k], dtype=np.float64)
                                   - np.asarray(b[k], dtype=np.float64)))) for k in a)


def adagrad_first_step(start: Dict[str, np.ndarray], grads: Dict[str, np.ndarray],
                       eps_inside: bool) -> Dict[str, np.ndarray]:
    """The weights after one AdaGrad step from zero memory, as charrnn (eps inside the square
    root) or torch (eps outside) takes it, computed here in float64 from the given gradients."""
    out = {}
    for name, g in grads.items():
        g = np.asarray(g, dtype=np.float64)
        denom = np.sqrt(g * g + EPS) if eps_inside else np.sqrt(g * g) + EPS
        out[name] = np.asarray(start[name], dtype=np.float64) - ETA * g / denom
    return out


def first_update_check(start: Dict[str, np.ndarray], peers: Dict[str, Callable[[], Any]],
                       tolerance: float) -> Dict[str, Any]:
    """Every peer from charrnn's initial weights ``start``, one update each, compared with the
    first (the charrnn backend being timed).

    ``peers`` maps a label to a factory returning a dict of callables: ``step`` (one update,
    returning the device loss), ``to_float``, ``grads`` (clipped, charrnn's names), ``hidden``,
    ``params``, and ``eps_inside`` (its AdaGrad's eps placement). Compared: the first loss, the
    clipped gradients, the new hidden state, the new weights against the peer's own AdaGrad
    rule applied to the reference's gradients (this checks the weight mapping and the update
    together), and the second update's loss when the peer is handed the reference's weights after
    the first. The free-running second update's loss is compared too, for information only.
    """
    rows: List[Dict[str, Any]] = []
    ref: Optional[Dict[str, Any]] = None
    for label, factory in peers.items():
        peer = factory()
        first = peer["to_float"](peer["step"]())
        got = {"loss": first, "grads": peer["grads"](), "hidden": peer["hidden"](),
               "params": peer["params"]()}
        second = peer["to_float"](peer["step"]())
        if ref is None:
            ref = got
            handed = second
        else:
            # A second copy takes its first update, is handed the reference's new weights, and
            # takes the second: the same loss again, so only the optimizer step parted the two.
            twin = factory()
            twin["step"]()
            twin["set_params"](ref["params"])
            handed = twin["to_float"](twin["step"]())
        expected = adagrad_first_step(start, ref["grads"], peer["eps_inside"])
        row: Dict[str, Any] = {
            "peer": label, "first_loss": first, "second_loss": second,
            "eps": "inside sqrt" if peer["eps_inside"] else "outside sqrt",
            "abs_loss_diff": abs(first - ref["loss"]),
            "max_abs_grad_diff": max_abs_diff(got["grads"], ref["grads"]),
            "max_abs_hidden_diff": float(np.max(np.abs(got["hidden"] - ref["hidden"]))),
            "max_abs_weight_diff": max_abs_diff(got["params"], expected),
            "second_abs_loss_diff": abs(second - rows[0]["second_loss"]) if rows else 0.0,
            "handed_second_abs_loss_diff": abs(handed - rows[0]["second_loss"]) if rows else 0.0,
        }
        rows.append(row)
    keys = ("abs_loss_diff", "max_abs_grad_diff", "max_abs_hidden_diff", "max_abs_weight_diff",
            "handed_second_abs_loss_diff")
    ok = all(math.isfinite(r[k]) and r[k] <= tolerance for r in rows for k in keys)
    return {"tolerance": tolerance, "peers": rows, "ok": bool(ok)}


def run_benchmark(peers: Dict[str, Dict[str, Any]], warmup: int, repeats: int,
                  updates: int) -> Dict[str, Any]:
    """Warm every peer up, then interleave ``repeats`` timed runs of ``updates`` updates each."""
    for peer in peers.values():
        time_updates(peer["step"], warmup, peer["sync"])
    rates: Dict[str, List[float]] = {key: [] for key in peers}
    for _ in range(repeats):
        for key, peer in peers.items():
            rates[key].append(time_updates(peer["step"], updates, peer["sync"]))
    out: Dict[str, Any] = {"peers": {}}
    for key, peer in peers.items():
        peer["sync"]()
        # Read once, after all the timing: the only host reads of a loss in the benchmark.
        out["peers"][key] = {**summarise(rates[key]), "rates": rates[key],
                             "label": peer["label"], "last_loss": peer["loss"](),
                             "smooth_loss": peer["smooth_loss"](), "epochs": peer["epoch"]()}
    out["updates_per_peer"] = warmup + repeats * updates
    out["ratios"] = {}
    for other in ("torch", "numpy"):
        if other in peers:
            per_repeat = [a / b for a, b in zip(rates["charrnn"], rates[other])]
            out["ratios"][f"charrnn/{other}"] = {
                "median_of_ratios": statistics.median(per_repeat),
                "ratio_of_medians": (out["peers"]["charrnn"]["median"]
                                     / out["peers"][other]["median"]),
                "per_repeat": per_repeat,
            }
    return out


# -- environment ----------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def installed_version(module: str) -> Optional[str]:
    """The installed distribution(s) providing ``module`` and their versions, without importing
    it (importing CuPy on a machine without a GPU can be slow or fail), or None."""
    from importlib import metadata

    dists = metadata.packages_distributions().get(module) or []
    found = []
    for dist in sorted(set(dists)):
        try:
            found.append(f"{metadata.version(dist)} ({dist})")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found) or None


def cupy_status() -> tuple[bool, str]:
    """Whether the CuPy backend can run here, and one line saying what it is or why not."""
    try:
        CupyBackend.check_available()
    except BackendUnavailable as exc:
        return False, "unavailable: " + str(exc).split(";")[0]
    return True, CupyBackend.describe()


# -- reporting ------------------------------------------------------------------------------------


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def print_report(result: Dict[str, Any]) -> None:
    cfg, env = result["config"], result["environment"]
    print(f"charrnn {env['charrnn']}, numpy {env['numpy']}, torch {env['torch']}, "
          f"cupy {env['cupy']}; Python {env['python']}, {env['machine']}")
    if env["cupy"] != "not installed" and not env["cupy_status"].startswith("cupy "):
        print(f"CuPy backend: {env['cupy_status']}")
    print(f"CPU: {env['cpu']} ({env['cpu_cores']} cores available"
          + (f"; torch uses {env['torch_threads']} threads" if env.get("torch_threads") else "")
          + ")")
    print(f"GPU: {env['gpu']}")
    print(f"text: {cfg['data']} ({cfg['characters']:,} characters, K={cfg['vocab_size']})")
    print(f"config: hidden {cfg['hidden']}, sequence {cfg['seq_length']}, batch 1, AdaGrad eta "
          f"{cfg['eta']} eps {cfg['eps']:g}, {cfg['dtype']}, sigma {cfg['sigma']}, gradients "
          f"clipped elementwise to [-{cfg['clip']:g}, {cfg['clip']:g}], hidden state carried "
          "between updates and reset at the epoch wrap")
    print(f"method: {cfg['warmup']} warm-up updates per peer, then {cfg['repeats']} interleaved "
          f"repeats of {cfg['updates']:,} updates per peer; device synchronised before each clock "
          "read; losses read to the host only after timing")
    print("peers:")
    for key, desc in result["peers"].items():
        print(f"  {key + ':':<9}{desc}")
    if result.get("torch_skipped"):
        print(f"  {'torch:':<9}{result['torch_skipped']}")
    else:
        print("  note: torch's Adagrad adds eps outside the square root (g / (sqrt(G) + eps)), "
              "charrnn inside (g / sqrt(G + eps)): the same cost, slightly different steps")
    print()
    check = result["sanity"]
    status = "OK" if check["ok"] else "MISMATCH"
    rows = check["peers"]
    print(f"sanity check, one update from the same initial weights (tolerance "
          f"{check['tolerance']:.0e}): {status}")
    print(f"  {'peer':<9}{'first loss':>18}{'|loss diff|':>13}{'|grad diff|':>13}"
          f"{'|h diff|':>10}{'|weight diff|':>15}{'|handed 2nd|':>14}  AdaGrad eps")
    for i, row in enumerate(rows):
        diff = (lambda key, width: f"{'-':>{width}}") if i == 0 else (
            lambda key, width: f"{row[key]:>{width}.1e}")
        print(f"  {row['peer']:<9}{row['first_loss']:>18.12f}{diff('abs_loss_diff', 13)}"
              f"{diff('max_abs_grad_diff', 13)}{diff('max_abs_hidden_diff', 10)}"
              f"{row['max_abs_weight_diff']:>15.1e}{diff('handed_second_abs_loss_diff', 14)}"
              f"  {row['eps']}")
    if len(rows) > 1:
        print(f"  maxima over all entries, against {rows[0]['peer']}: the first update's loss, "
              "clipped gradients and new hidden state; the new weights against the peer's own "
              f"AdaGrad rule applied to {rows[0]['peer']}'s gradients; the second update's loss "
              f"when handed {rows[0]['peer']}'s weights after the first")
    else:
        print("  the new weights against charrnn's AdaGrad rule applied to its own gradients; no "
              "other peer to compare with")
    for row in rows[1:]:
        why = ("eps placement: the handed-over column shows the models agree"
               if row["eps"] != rows[0]["eps"] else "rounding only: the same optimizer")
        print(f"  free-running second update, {row['peer']} vs {rows[0]['peer']}: |loss diff| "
              f"{row['second_abs_loss_diff']:.1e} ({why}); informational")
    print()
    bench = result["benchmark"]
    print(f"{'peer':<10}{'what':<44}{'median upd/s':>14}{'min':>10}{'max':>10}")
    for key, s in bench["peers"].items():
        print(f"{key:<10}{s['label']:<44}{fmt_rate(s['median']):>14}{fmt_rate(s['min']):>10}"
              f"{fmt_rate(s['max']):>10}")
    print()
    names = {"charrnn/torch": f"charrnn-{cfg['backend']} / torch-{cfg['torch_device']}",
             "charrnn/numpy": f"charrnn-{cfg['backend']} / charrnn-numpy"}
    for name, r in bench["ratios"].items():
        print(f"ratio {names[name]}: {r['median_of_ratios']:.2f}x (median of per-repeat ratios, "
              f"range {min(r['per_repeat']):.2f}-{max(r['per_repeat']):.2f}), "
              f"{r['ratio_of_medians']:.2f}x (ratio of medians)")
    if "numpy" not in bench["peers"]:
        print("ratio against charrnn-numpy: not measured (the backend timed is numpy itself)")
    losses = ", ".join(f"{key} {s['last_loss']:.3f} / {s['smooth_loss']:.3f}"
                       for key, s in bench["peers"].items())
    print(f"after {bench['updates_per_peer']:,} updates each, last loss / smooth loss (read "
          f"once, now): {losses}")
    if len(bench["peers"]) > 1:
        print("  informational, not a check: torch's trajectory parts from charrnn's at the second "
              "update (eps placement); charrnn backends' part as AdaGrad amplifies rounding "
              "(see benchmarks/bench_numpy.py)")
    if not check["ok"]:
        print()
        print("WARNING: from the same initial weights the peers' first losses, gradients or "
              f"hidden states disagree beyond {check['tolerance']:.0e}; the speed comparison is "
              "not of the same computation.")


# -- the command ----------------------------------------------------------------------------------


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None,
                        help="charrnn backend to time [default: cupy if it can run here, else "
                             "numpy]")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="floating type of every peer [default: float64]")
    parser.add_argument("--torch-device", default=None,
                        help="device of the PyTorch peer [default: cuda if available, else cpu]")
    parser.add_argument("--torch-input", choices=("embedding", "onehot"), default="embedding",
                        help="how the PyTorch peer makes its one-hot inputs: an identity "
                             "embedding (one gather) or F.one_hot + cast [default: embedding]")
    parser.add_argument("--data", default=None,
                        help="text file to train on [default: charrnn's embedded corpus, as "
                             "`charrnn run` uses]")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per peer")
    parser.add_argument("--updates", type=int, default=1000, help="updates per timed repeat")
    parser.add_argument("--warmup", type=int, default=100, help="untimed updates per peer first")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="largest allowed |difference| in the first-update check "
                             "[default: 1e-9 in float64, 1e-3 in float32]")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    for name in ("repeats", "updates"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    if args.tolerance is None:
        args.tolerance = TOLERANCE[args.dtype]
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    cupy_ok, cupy_line = cupy_status()
    backend_name = args.backend or ("cupy" if cupy_ok else "numpy")
    try:
        corpus = load_corpus(args.data, "utf-8", SEQ_LENGTH)
        make_backend(backend_name, args.dtype)  # fail early, with charrnn's one-line message
    except CharrnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    torch, torch_missing = import_torch()
    torch_device = None
    if torch is not None:
        try:
            torch_device = resolve_torch_device(torch, args.torch_device)
        except CharrnnError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        torch.manual_seed(SEED)
    elif args.json:
        print(torch_missing, file=sys.stderr)  # the one line; stdout stays JSON

    env: Dict[str, Any] = {
        "charrnn": charrnn.__version__, "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else "not installed",
        "cupy": installed_version("cupy") or "not installed",
        "cupy_status": cupy_line,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}",
        "cpu": cpu_name(), "cpu_cores": cpu_count(),
    }
    gpu = []
    if cupy_ok:
        gpu.append(cupy_line)
    if torch is not None:
        env["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            index = torch.device(torch_device).index if torch_device.startswith("cuda") else None
            gpu.append(f"torch sees {torch.cuda.get_device_name(index)} (CUDA {torch.version.cuda}"
                       f", cuDNN {torch.backends.cudnn.version()})")
    env["gpu"] = "; ".join(gpu) or ("none: CuPy cannot run here and "
                                    + ("torch sees no CUDA device" if torch is not None
                                       else "torch is not installed"))
    if torch is not None:
        env["torch_device"] = torch_device

    # The peers: charrnn with the chosen backend, torch, and charrnn-numpy when that differs.
    trainer = make_trainer(corpus, backend_name, args.dtype)
    peers_desc = {"charrnn": f"{backend_name} backend, {trainer.backend.describe()}; timed "
                             "through Trainer.train_step"}
    bench_peers: Dict[str, Dict[str, Any]] = {}

    def charrnn_peer(tr: Trainer, label: str) -> Dict[str, Any]:
        return {"label": label, "step": tr.train_step, "sync": tr.backend.synchronize,
                "loss": tr.loss_value, "smooth_loss": tr.smooth_loss_value,
                "epoch": lambda: tr.epoch}

    def charrnn_check(name: str) -> Callable[[], Any]:
        def factory():
            tr = make_trainer(corpus, name, args.dtype)
            return {"step": tr.train_step, "to_float": tr.backend.to_float,
                    "grads": tr.model.get_grads, "params": tr.model.get_params,
                    "set_params": tr.model.set_params,
                    "hidden": lambda: hidden_state(tr), "eps_inside": True}
        return factory

    bench_peers["charrnn"] = charrnn_peer(trainer, f"charrnn, {backend_name} backend")
    check_peers: Dict[str, Callable[[], Any]] = {"charrnn": charrnn_check(backend_name)}
    start = trainer.model.get_params()
    if torch is not None:
        tp = TorchPeer(torch, corpus.ids, corpus.vocab_size, start, args.dtype, torch_device,
                       args.torch_input)
        cudnn = tp.uses_cudnn()
        rnn_kernel = "cuDNN" if cudnn else f"not cuDNN (torch's {tp.device.type} kernels)"
        inp = ("identity embedding, F.embedding(ids, eye(K))" if args.torch_input == "embedding"
               else "F.one_hot(ids, K).to(dtype)")
        peers_desc["torch"] = (
            f"torch {torch.__version__} on {torch_device}: nn.RNN(tanh, 1 layer, batch 1; "
            f"{rnn_kernel}) + Linear + cross_entropy(sum) + backward + clip_grad_value_(5) + "
            f"Adagrad(lr 0.1, eps 1e-8); input: {inp}; bias_hh_l0 held at 0; hidden state "
            "detached and carried")
        env["torch_cudnn"] = cudnn
        bench_peers["torch"] = {
            "label": f"torch nn.RNN on {torch_device}" + (" (cuDNN)" if cudnn else ""),
            "step": tp.train_step, "sync": tp.synchronize,
            "loss": lambda: float(tp.loss.item()),
            "smooth_loss": lambda: float(tp.smooth_loss.item()),
            "epoch": lambda: tp.epoch,
        }

        def torch_check():
            peer = TorchPeer(torch, corpus.ids, corpus.vocab_size, start, args.dtype,
                             torch_device, args.torch_input)
            return {"step": peer.train_step, "to_float": lambda t: float(t.item()),
                    "grads": peer.grads, "params": peer.get_params, "hidden": peer.hidden,
                    "set_params": peer.set_params, "eps_inside": False}
        check_peers["torch"] = torch_check
    if backend_name != "numpy":
        np_trainer = make_trainer(corpus, "numpy", args.dtype)
        peers_desc["numpy"] = (f"charrnn's numpy backend, {np_trainer.backend.describe()}; "
                               "timed through Trainer.train_step")
        bench_peers["numpy"] = charrnn_peer(np_trainer, "charrnn, numpy backend (CPU)")
        check_peers["numpy"] = charrnn_check("numpy")

    result: Dict[str, Any] = {
        "config": {"data": corpus.source, "characters": len(corpus.text),
                   "vocab_size": corpus.vocab_size, "hidden": HIDDEN, "seq_length": SEQ_LENGTH,
                   "batch": 1, "eta": ETA, "eps": EPS, "sigma": SIGMA, "clip": CLIP,
                   "dtype": args.dtype, "seed": SEED, "backend": backend_name,
                   "torch_device": torch_device, "torch_input": args.torch_input,
                   "warmup": args.warmup, "repeats": args.repeats, "updates": args.updates},
        "environment": env,
        "peers": peers_desc,
        "torch_skipped": torch_missing,
    }
    # Overflow in a diverging run would be a result, not a warning to print mid-table.
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        result["sanity"] = first_update_check(start, check_peers, args.tolerance)
        result["benchmark"] = run_benchmark(bench_peers, args.warmup, args.repeats, args.updates)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0 if result["sanity"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
