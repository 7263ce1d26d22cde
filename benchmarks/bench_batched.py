"""Characters per second: charrnn's batched models against PyTorch's nn.LSTM, nn.GRU and nn.RNN.

Why this exists: ``bench_numpy.py`` and ``bench_torch.py`` measure the course's configuration
(one stream, hidden 100), where an update is a chain of tiny operations and overhead decides.
charrnn now trains batches of streams and stacked gated cells, where the matrix products are
large enough for the BLAS to matter and the obvious alternative is PyTorch. This script puts the
two side by side in one process, on the same text, from the same initial weights, at sizes
char-rnn users train: LSTM and GRU of 2 layers x 256, and the vanilla RNN (charrnn's ``rnn``)
with one layer of 512, each at batch 32 x sequence 64, in float32. It is a first look, not a
tuned comparison: charrnn runs as ``charrnn run`` would run it.

Why it is built this way:

* Each side does a whole training update: forward, backward and an optimizer step (Adam, lr
  2e-3, betas 0.9/0.999, eps 1e-8 on both sides), with a one-hot input, a linear output layer and
  the cross-entropy summed over the T steps and averaged over the B streams. The text is cut into
  B stripes as :class:`charrnn.stream.TextStream` cuts it, each stream's hidden state is carried
  from one update to the next (detached in torch) and reset at the epoch wrap.
* charrnn is driven through its public objects, as ``charrnn.assembly.build_trainer`` assembles
  them (``make_backend``, ``make_model``, ``make_optimizer``, ``TextStream``, a ``Trainer`` with
  no callbacks), and timed through ``Trainer.train_step``.
* The PyTorch peer is the idiomatic one: ``nn.LSTM``/``nn.GRU``/``nn.RNN(tanh)`` (sequence
  first), an ``nn.Linear`` output, ``F.cross_entropy(reduction="sum") / B``, ``backward``,
  ``torch.nn.utils.clip_grad_norm_(5)`` and ``torch.optim.Adam`` with its defaults. Its input is
  the one-hot rows of the ids, made by one gather (``F.embedding(ids, eye(K))``).
* Both clip the gradient's norm at 5 (charrnn's ``--clip 0 --clip-norm``, a limit per character,
  here 5 / T since both losses are summed over the T steps). Known differences, printed with the
  results: the first layer's input projection (charrnn looks up row ``x_t`` of its input weights,
  torch multiplies the one-hot rows by them, a (T*B, K) x (K, gates*m) product each way); for the
  vanilla RNN torch has two bias vectors per layer where the course's model has one (the LSTM and
  GRU have two on both sides); and charrnn's
  GRU is char-rnn's variant, with the reset gate applied to ``h_{t-1}`` before the product with
  the candidate's weights, where ``nn.GRU`` (cuDNN's) applies it after: the same FLOPs, another
  function.
* A speed comparison means something only if both sides compute the same thing. Before timing,
  each model is checked in float64: torch's modules are given charrnn's initial weights (gates
  reordered: charrnn's LSTM blocks are i f o n, torch's i f g o), both compute the loss, every
  gradient and the state after the first batch from a zero state, and they must agree to
  ``--tolerance`` (relative); a mismatch makes the script exit non-zero. The GRU is compared too,
  but as information only, since the cells differ by design.
* Repeats are interleaved (charrnn, torch, charrnn, torch, ...) so that a noisy neighbour or a
  clock change lands on both sides; the median of the per-repeat ratios is the figure least
  disturbed by that noise. The device is synchronised before each clock read; losses are read to
  the host only after the timing. Before each timed block the script sleeps ``--settle`` seconds
  (not timed): OpenBLAS's idle workers spin for up to ~0.1 s after their last call, and on a
  2-core machine they would otherwise take a core from the side that runs next.
* Threads: the BLAS libraries read their thread counts when they load, so ``--threads N`` sets
  ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` before NumPy and torch are
  imported (re-executing the script if they already were) and calls ``torch.set_num_threads(N)``;
  the report says how many threads NumPy's OpenBLAS and torch actually use.
* torch is optional: without it the script says so and measures charrnn alone.

Examples::

    python benchmarks/bench_batched.py --threads 2
    python benchmarks/bench_batched.py --threads 1 --models lstm --repeats 5
    python benchmarks/bench_batched.py --backend cupy      # charrnn on CuPy, torch on CUDA
"""
from __future__ import annotations

import os
import sys

from pin_threads import THREAD_VARS, pin_threads

if __name__ == "__main__":
    pin_threads(sys.argv[1:], __file__)

# Everything below may load a BLAS: it must come after _pin_threads.
import argparse  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple  # noqa: E402

import charrnn  # noqa: E402
import numpy as np  # noqa: E402
from charrnn.data import Corpus, load_corpus  # noqa: E402
from charrnn.errors import CharrnnError  # noqa: E402
from charrnn.model import layer_names  # noqa: E402
from charrnn import RunConfig  # noqa: E402
from charrnn.assembly import build_trainer, make_backend  # noqa: E402
from charrnn.stream import TextStream  # noqa: E402
from charrnn.trainer import Trainer  # noqa: E402

BATCH = 32
SEQ_LENGTH = 64
ETA = 2e-3
CLIP = 5.0
SEED = 0
DTYPE = "float32"
#: The sanity check runs in float64 on both sides, so agreement is to rounding.
CHECK_DTYPE = "float64"
SMOOTHING = 0.999


@dataclass(frozen=True)
class Spec:
    """One benchmarked configuration: charrnn's model and its torch counterpart."""

    key: str
    model: str  # charrnn's registered name
    hidden: int
    layers: int
    torch_module: str  # the torch.nn class
    gates: int
    #: charrnn's gate blocks, in the order torch stores them (None: the same order).
    perm: Optional[Tuple[int, ...]]
    #: Whether both sides compute the same function (the GRU variants do not).
    same_math: bool

    def describe(self) -> str:
        layers = f"{self.layers} layers x {self.hidden}" if self.layers > 1 else \
            f"1 layer x {self.hidden}"
        return f"{self.model} {layers}"


SPECS: Dict[str, Spec] = {
    # charrnn's LSTM blocks are i f o n; torch's i f g o: torch block k is charrnn block perm[k].
    "lstm": Spec("lstm", "lstm", 256, 2, "LSTM", 4, (0, 1, 3, 2), True),
    # Both r z n (charrnn calls z u); the cells differ (reset before or after the product).
    "gru": Spec("gru", "gru", 256, 2, "GRU", 3, None, False),
    "rnn": Spec("rnn", "rnn", 512, 1, "RNN", 1, None, True),
}
TORCH_NOTE = {
    "lstm": "nn.LSTM",
    "gru": "nn.GRU (reset gate after the product)",
    "rnn": "nn.RNN(tanh)",
}


# -- the charrnn side -----------------------------------------------------------------------------


def make_trainer(spec: Spec, corpus: Corpus, backend_name: str, dtype: str) -> Trainer:
    """charrnn for ``spec``, built by ``build_trainer`` as ``charrnn.train`` builds it,
    without the callbacks (the loop alone is timed)."""
    # torch clips the norm of its loss's gradient (summed over T, as charrnn's) at CLIP;
    # charrnn's --clip-norm is stated per character, so the same limit is CLIP / T.
    config = RunConfig(backend=backend_name, model=spec.model, hidden=spec.hidden,
                       layers=spec.layers, batch_size=BATCH, seq_length=SEQ_LENGTH,
                       optimizer="adam", eta=ETA, clip=0.0, clip_norm=CLIP / SEQ_LENGTH,
                       seed=SEED, dtype=dtype, iterations=10**9)
    return build_trainer(config, corpus=corpus, plugins=False)


# -- the PyTorch side -----------------------------------------------------------------------------


def _blocks(a: np.ndarray, spec: Spec, axis: int) -> np.ndarray:
    """``a`` with its gate blocks along ``axis`` reordered from charrnn's order to torch's (the
    LSTM's permutation is its own inverse, so the same call maps back)."""
    if spec.perm is None:
        return a
    m = a.shape[axis] // spec.gates
    index = np.concatenate([np.arange(k * m, (k + 1) * m) for k in spec.perm])
    return np.take(a, index, axis=axis)


def charrnn_to_torch(spec: Spec, params: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """charrnn's parameters (host arrays by name) as torch's (``rnn.*`` and ``out.*``)."""
    out: Dict[str, np.ndarray] = {}
    if spec.model == "rnn":  # course orientation: W (m, m), U (m, in), V (K, m)
        for layer, (W, U, b) in enumerate(layer_names(("W", "U", "b"), spec.layers)):
            out[f"rnn.weight_ih_l{layer}"] = params[U]
            out[f"rnn.weight_hh_l{layer}"] = params[W]
            out[f"rnn.bias_ih_l{layer}"] = params[b]
            out[f"rnn.bias_hh_l{layer}"] = np.zeros_like(params[b])
        out["out.weight"], out["out.bias"] = params["V"], params["c"]
        return out
    # Gated cells, row-vector orientation: Wx (in, g*m), Wh (m, g*m), Wy (m, K).
    for layer, (Wx, Wh, b, bh) in enumerate(layer_names(("Wx", "Wh", "b", "bh"), spec.layers)):
        out[f"rnn.weight_ih_l{layer}"] = _blocks(params[Wx], spec, 1).T
        out[f"rnn.weight_hh_l{layer}"] = _blocks(params[Wh], spec, 1).T
        out[f"rnn.bias_ih_l{layer}"] = _blocks(params[b], spec, 0)
        out[f"rnn.bias_hh_l{layer}"] = _blocks(params[bh], spec, 0)
    out["out.weight"], out["out.bias"] = params["Wy"].T, params["by"]
    return out


def torch_grads_to_charrnn(spec: Spec, grads: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """torch's gradients under charrnn's names. A hidden bias's gradient is that of bias_ih,
    which equals bias_hh's wherever the two add into the same pre-activation."""
    out: Dict[str, np.ndarray] = {}
    if spec.model == "rnn":
        for layer, (W, U, b) in enumerate(layer_names(("W", "U", "b"), spec.layers)):
            out[U] = grads[f"rnn.weight_ih_l{layer}"]
            out[W] = grads[f"rnn.weight_hh_l{layer}"]
            out[b] = grads[f"rnn.bias_ih_l{layer}"]
        out["V"], out["c"] = grads["out.weight"], grads["out.bias"]
        return out
    for layer, (Wx, Wh, b, bh) in enumerate(layer_names(("Wx", "Wh", "b", "bh"), spec.layers)):
        out[Wx] = _blocks(grads[f"rnn.weight_ih_l{layer}"].T, spec, 1)
        out[Wh] = _blocks(grads[f"rnn.weight_hh_l{layer}"].T, spec, 1)
        out[b] = _blocks(grads[f"rnn.bias_ih_l{layer}"], spec, 0)
        out[bh] = _blocks(grads[f"rnn.bias_hh_l{layer}"], spec, 0)
    out["Wy"], out["by"] = grads["out.weight"].T, grads["out.bias"]
    return out


def stripes(ids: np.ndarray, batch: int) -> np.ndarray:
    """The text as ``batch`` contiguous stripes, one per column, as TextStream cuts it."""
    ids = np.asarray(ids).reshape(-1)
    length = ids.shape[0] // batch
    return np.ascontiguousarray(ids[: batch * length].reshape(batch, length).T)


class TorchPeer:
    """The same model in PyTorch, one update per :meth:`train_step`."""

    def __init__(self, torch: Any, spec: Spec, ids: np.ndarray, vocab_size: int,
                 params: Dict[str, np.ndarray], dtype: str, device: str) -> None:
        self.torch = torch
        self.F = torch.nn.functional
        self.spec = spec
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        self.K, self.m = vocab_size, spec.hidden
        factory = {"device": self.device, "dtype": self.dtype}
        extra = {"nonlinearity": "tanh"} if spec.torch_module == "RNN" else {}
        self.rnn = getattr(torch.nn, spec.torch_module)(self.K, self.m, num_layers=spec.layers,
                                                        **extra, **factory)
        self.out = torch.nn.Linear(self.m, self.K, **factory)
        self.modules = {"rnn": self.rnn, "out": self.out}
        self.set_params(charrnn_to_torch(spec, params))
        self.params = [*self.rnn.parameters(), *self.out.parameters()]
        self.optimizer = torch.optim.Adam(self.params, lr=ETA)
        self.eye = torch.eye(self.K, **factory)
        self.data = torch.from_numpy(stripes(ids, BATCH).astype(np.int64)).to(self.device)
        self.length = int(self.data.shape[0])
        self.position = 0
        self.epoch = 0
        self.state = self.zero_state()
        self.loss: Any = None
        self.smooth_loss = torch.tensor(SEQ_LENGTH * math.log(self.K), **factory)

    def named_parameters(self) -> Dict[str, Any]:
        return {f"{prefix}.{name}": p for prefix, module in self.modules.items()
                for name, p in module.named_parameters()}

    def set_params(self, params: Dict[str, np.ndarray]) -> None:
        named = self.named_parameters()
        if set(named) != set(params):
            raise AssertionError(f"parameter mapping mismatch: torch has {sorted(named)}, the "
                                 f"mapping gives {sorted(params)}")
        with self.torch.no_grad():
            for name, p in named.items():
                value = self.torch.as_tensor(np.ascontiguousarray(params[name]))
                if tuple(value.shape) != tuple(p.shape):
                    raise AssertionError(f"{name}: mapped shape {tuple(value.shape)}, torch's "
                                         f"{tuple(p.shape)}")
                p.copy_(value)
        if self.device.type == "cuda":
            self.rnn.flatten_parameters()

    def zero_state(self) -> Any:
        shape = (self.spec.layers, BATCH, self.m)
        h = self.torch.zeros(shape, device=self.device, dtype=self.dtype)
        return (h, self.torch.zeros_like(h)) if self.spec.torch_module == "LSTM" else h

    def next_batch(self) -> Tuple[Any, Any]:
        """The next (T, B) inputs and targets, with TextStream's epoch-wrap rule."""
        T = SEQ_LENGTH
        if self.position + T + 1 > self.length:
            self.position = 0
            self.epoch += 1
            self.state = self.zero_state()
        p = self.position
        self.position = p + T
        return self.data[p : p + T], self.data[p + 1 : p + T + 1]

    def forward(self, x: Any, y: Any, state: Any) -> Tuple[Any, Any]:
        """The loss (summed over steps, averaged over streams) and the state after the batch."""
        T, B = x.shape
        hs, state = self.rnn(self.F.embedding(x, self.eye), state)  # one-hot rows in
        logits = self.out(hs.reshape(T * B, self.m))
        loss = self.F.cross_entropy(logits, y.reshape(-1), reduction="sum") / B
        return loss, state

    def train_step(self) -> Any:
        """One update. Returns the loss as a device tensor; nothing is read to the host."""
        x, y = self.next_batch()
        loss, state = self.forward(x, y, self.state)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.params, CLIP)
        self.optimizer.step()
        self.state = (tuple(s.detach() for s in state) if isinstance(state, tuple)
                      else state.detach())
        self.loss = loss.detach()
        self.smooth_loss.lerp_(self.loss, 1.0 - SMOOTHING)
        return self.loss

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def uses_cudnn(self) -> bool:
        x = self.F.embedding(self.data[:SEQ_LENGTH], self.eye)
        return bool(self.device.type == "cuda" and self.torch.cudnn_is_acceptable(x))


def import_torch() -> Tuple[Any, Optional[str]]:
    """``(torch, None)``, or ``(None, why)`` when torch cannot be imported here."""
    try:
        import torch
    except ModuleNotFoundError as exc:
        if (exc.name or "torch").split(".")[0] == "torch":
            return None, (f"torch is not installed in this Python ({sys.executable}); "
                          "measuring charrnn alone (pip install torch to add the PyTorch side)")
        return None, f"torch could not be imported ({exc}); measuring charrnn alone"
    except Exception as exc:  # a broken install: missing shared libraries and the like
        return None, (f"torch could not be imported ({type(exc).__name__}: {exc}); "
                      "measuring charrnn alone")
    return torch, None


def resolve_torch_device(torch: Any, requested: Optional[str], backend_name: str) -> str:
    """cuda when charrnn computes on a GPU and torch sees one, else cpu, unless requested."""
    if requested is None:
        return "cuda" if backend_name != "numpy" and torch.cuda.is_available() else "cpu"
    try:
        torch.zeros(1, device=torch.device(requested))
    except Exception as exc:
        raise CharrnnError(f"--torch-device {requested} cannot be used here ({exc}); "
                           "pass cpu, or cuda on a machine with a CUDA GPU") from None
    return requested


# -- the sanity check -----------------------------------------------------------------------------


def rel_diff(a: Any, b: Any) -> float:
    """max |a - b| / max |b| (max |a - b| when b is all zeros)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    diff = float(np.max(np.abs(a - b))) if b.size else 0.0
    return diff / scale if scale > 0 else diff


def same_math_check(torch: Any, spec: Spec, corpus: Corpus, backend_name: str,
                    torch_device: str) -> Dict[str, Any]:
    """One forward and backward on each side in float64, from charrnn's initial weights, on the
    first batch from a zero state: the loss, every gradient and the state after the batch."""
    trainer = make_trainer(spec, corpus, backend_name, CHECK_DTYPE)
    model, be = trainer.model, trainer.backend
    x, y, _ = trainer.stream.next()
    loss, state = model.loss_and_grads(x, y, model.zero_state(BATCH))
    c_loss = be.to_float(loss)
    c_grads = model.get_grads()
    c_state = model.state_to_host(state)

    peer = TorchPeer(torch, spec, corpus.ids, corpus.vocab_size, model.get_params(), CHECK_DTYPE,
                     torch_device)
    tx, ty = peer.next_batch()
    same_ids = bool(np.array_equal(tx.cpu().numpy(), be.to_numpy(x).astype(np.int64))
                    and np.array_equal(ty.cpu().numpy(), be.to_numpy(y).astype(np.int64)))
    t_loss, t_state = peer.forward(tx, ty, peer.zero_state())
    t_loss.backward()
    t_grads = torch_grads_to_charrnn(spec, {name: p.grad.detach().cpu().numpy()
                                            for name, p in peer.named_parameters().items()})
    t_state = [s.detach().cpu().numpy() for s in
               (t_state if isinstance(t_state, tuple) else (t_state,))]
    grad_rows = {name: rel_diff(c_grads[name], t_grads[name]) for name in c_grads}
    worst = max(grad_rows, key=grad_rows.get)
    return {
        "model": spec.key, "same_math": spec.same_math, "same_ids": same_ids,
        "charrnn_loss": c_loss, "torch_loss": float(t_loss.item()),
        "loss_rel_diff": abs(c_loss - float(t_loss.item())) / abs(c_loss),
        "grad_rel_diff": grad_rows[worst], "worst_grad": worst,
        "state_rel_diff": max(rel_diff(a, b) for a, b in zip(c_state, t_state)),
    }


def judge(row: Dict[str, Any], tolerance: float) -> bool:
    keys = ("loss_rel_diff", "grad_rel_diff", "state_rel_diff")
    close = all(math.isfinite(row[k]) and row[k] <= tolerance for k in keys)
    return bool(row["same_ids"] and (close or not row["same_math"]))


# -- measuring ------------------------------------------------------------------------------------


def time_updates(step: Callable[[], Any], n: int, sync: Callable[[], None],
                 settle: float = 0.0) -> float:
    """Seconds for ``n`` calls of ``step``, queued device work included, after ``settle``
    seconds of quiet (so the other side's idle threads stop spinning)."""
    sync()
    if settle:
        time.sleep(settle)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    sync()
    return time.perf_counter() - t0


def summarise(rates: List[float]) -> Dict[str, float]:
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def bench_model(torch: Any, spec: Spec, corpus: Corpus, backend_name: str,
                torch_device: Optional[str], warmup: int, repeats: int,
                updates: int, settle: float) -> Dict[str, Any]:
    """Warm both sides up, then ``repeats`` interleaved timed runs of ``updates`` updates each."""
    chars = updates * BATCH * SEQ_LENGTH
    trainer = make_trainer(spec, corpus, backend_name, DTYPE)
    sides: Dict[str, Dict[str, Any]] = {
        "charrnn": {"step": trainer.train_step, "sync": trainer.backend.synchronize,
                    "loss": trainer.loss_value, "smooth_loss": trainer.smooth_loss_value,
                    "epoch": lambda: trainer.epoch, "parameters": trainer.model.size}}
    if torch is not None:
        peer = TorchPeer(torch, spec, corpus.ids, corpus.vocab_size, trainer.model.get_params(),
                         DTYPE, torch_device)
        sides["torch"] = {"step": peer.train_step, "sync": peer.synchronize,
                          "loss": lambda: float(peer.loss.item()),
                          "smooth_loss": lambda: float(peer.smooth_loss.item()),
                          "epoch": lambda: peer.epoch,
                          "parameters": sum(p.numel() for p in peer.params),
                          "cudnn": peer.uses_cudnn()}
    for side in sides.values():
        time_updates(side["step"], warmup, side["sync"])
    rates: Dict[str, List[float]] = {key: [] for key in sides}
    for _ in range(repeats):
        for key, side in sides.items():
            rates[key].append(chars / time_updates(side["step"], updates, side["sync"],
                                                   settle))
    out: Dict[str, Any] = {"model": spec.key, "config": spec.describe(), "sides": {}}
    for key, side in sides.items():
        side["sync"]()
        out["sides"][key] = {**summarise(rates[key]), "rates": rates[key],
                             "last_loss": side["loss"](), "smooth_loss": side["smooth_loss"](),
                             "epochs": side["epoch"](), "parameters": side["parameters"]}
        if "cudnn" in side:
            out["sides"][key]["cudnn"] = side["cudnn"]
    if "torch" in sides:
        per_repeat = [a / b for a, b in zip(rates["charrnn"], rates["torch"])]
        out["ratio"] = {"median_of_ratios": statistics.median(per_repeat),
                        "ratio_of_medians": (out["sides"]["charrnn"]["median"]
                                             / out["sides"]["torch"]["median"]),
                        "per_repeat": per_repeat}
    out["updates_per_side"] = warmup + repeats * updates
    return out


# -- environment ----------------------------------------------------------------------------------


def _loaded_libraries(fragment: str) -> List[str]:
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            paths = {line.split()[-1] for line in fh if "/" in line}
    except OSError:
        return []
    return sorted(p for p in paths if fragment in os.path.basename(p).lower())


def openblas_info() -> Dict[str, Any]:
    """The thread count and core type of the OpenBLAS loaded in this process, where one is (the
    one NumPy's wheels bundle exports ``scipy_openblas_*64_``; a plain one ``openblas_*``)."""
    for path in _loaded_libraries("openblas"):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        info: Dict[str, Any] = {"library": os.path.basename(path)}
        for prefix in ("scipy_openblas_", "scipy_openblas64_", "openblas_"):
            for suffix in ("64_", ""):
                getter = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                if getter is None:
                    continue
                getter.restype = ctypes.c_int
                info["threads"] = int(getter())
                corename = getattr(lib, f"{prefix}get_corename{suffix}", None)
                if corename is not None:
                    corename.restype = ctypes.c_char_p
                    info["core"] = (corename() or b"").decode("ascii", "replace")
                setter = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
                if setter is not None:
                    setter.argtypes = [ctypes.c_int]
                    info["_set"] = setter
                return info
    return {}


def numpy_blas() -> str:
    """The BLAS NumPy was built against, from ``numpy.show_config``."""
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # NumPy < 1.26 has no mode="dicts"
        return "unknown"


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


def set_threads(torch: Any, threads: Optional[int]) -> Dict[str, Any]:
    """Apply ``--threads`` at run time too (torch's intra-op pool; NumPy's OpenBLAS when it was
    loaded before the variables were set) and report what each side uses."""
    blas = openblas_info()
    if threads is not None:
        if blas.get("threads") not in (None, threads) and "_set" in blas:
            blas["_set"](threads)
            blas = openblas_info()
        if torch is not None:
            torch.set_num_threads(threads)
    blas.pop("_set", None)
    out: Dict[str, Any] = {
        "requested": threads,
        "env": {var: os.environ.get(var) for var in THREAD_VARS},
        "numpy_blas_threads": blas.get("threads"),
        "numpy_blas_core": blas.get("core"),
    }
    if torch is not None:
        out["torch_threads"] = torch.get_num_threads()
    return out


def torch_blas(torch: Any) -> str:
    """The BLAS torch was built with (its build settings' ``BLAS_INFO``)."""
    try:
        found = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    except Exception:
        found = None
    return found.group(1) if found else "unknown"


# -- reporting ------------------------------------------------------------------------------------


def fmt(x: float) -> str:
    return f"{x:,.0f}"


def print_report(result: Dict[str, Any]) -> None:
    cfg, env, thr = result["config"], result["environment"], result["threads"]
    print(f"charrnn {env['charrnn']}; numpy {env['numpy']} (BLAS: {env['numpy_blas']}"
          + (f", {thr['numpy_blas_core']} kernels" if thr.get("numpy_blas_core") else "")
          + f"); torch {env['torch']}"
          + (f" (BLAS: {env['torch_blas']})" if env.get("torch_blas") else "")
          + f"; Python {env['python']}, {env['machine']}")
    print(f"CPU: {env['cpu']} ({env['cpu_cores']} cores available)")
    if thr["requested"] is None:
        set_vars = ", ".join(f"{k}={v}" for k, v in thr["env"].items() if v is not None)
        how = f"default (--threads not given; {set_vars or 'no thread variable set'})"
    else:
        how = (f"--threads {thr['requested']}: {'/'.join(THREAD_VARS)}={thr['requested']}, "
               f"torch.set_num_threads({thr['requested']})")
    blas_threads = thr["numpy_blas_threads"]
    print(f"threads: {how}; in use: numpy's OpenBLAS "
          f"{blas_threads if blas_threads is not None else '(not found)'}"
          + (f", torch {thr['torch_threads']}" if "torch_threads" in thr else ""))
    if cfg["backend"] != "numpy" or (cfg.get("torch_device") or "cpu") != "cpu":
        print(f"devices: charrnn {result['backend_describe']}; torch {cfg['torch_device']}"
              + (f" ({env['gpu']})" if env.get("gpu") else ""))
    print(f"text: {cfg['data']} ({cfg['characters']:,} characters, K={cfg['vocab_size']})")
    print(f"config: {cfg['dtype']}, batch {cfg['batch']} x sequence {cfg['seq_length']}; Adam lr "
          f"{cfg['eta']:g} (betas 0.9 0.999, eps 1e-8) on both sides; one-hot input, linear "
          "output, cross-entropy summed over steps and averaged over streams; hidden state "
          "carried between updates (detached in torch), reset at the epoch wrap")
    order = "interleaved repeats (charrnn, torch, ...)" if not result.get("torch_skipped") \
        else "repeats"
    print(f"method: {cfg['warmup']} warm-up updates per side, then {cfg['repeats']} {order} of "
          f"{cfg['updates']} updates per side, each after {cfg['settle']:g} s of untimed quiet; "
          "chars/s = updates x batch x sequence / seconds")
    print("differences (printed, not corrected):")
    print(f"  clip: both rescale the gradient to a total norm of at most {cfg['clip']:g} "
          f"(charrnn --clip 0 --clip-norm {cfg['clip']:g}/T, torch clip_grad_norm_); torch's "
          "norm counts its second bias too")
    print("  input: charrnn's first layer looks up row x_t of its input weights; torch multiplies "
          "one-hot rows (F.embedding(ids, eye(K))) by them, a (T*B, K) x (K, gates*m) product")
    print("  biases: both have two per layer for lstm and gru; for rnn torch trains two "
          "(b_hh starts at 0), charrnn's course RNN one")
    if "gru" in cfg["models"]:
        print("  gru: charrnn's is char-rnn's variant, reset gate applied before the recurrent "
              "product (n = tanh(x Wx_n + (r*h) Wh_n)); torch's nn.GRU applies it after "
              "(n = tanh(x W_in + r*(h W_hn + b_hn))): the same FLOPs, another function")
    if result.get("torch_skipped"):
        print(f"torch: {result['torch_skipped']}")
    print()
    check = result.get("sanity")
    if check is not None:
        status = "OK" if check["ok"] else "MISMATCH"
        print(f"sanity check, float64, one forward and backward from charrnn's initial weights on "
              f"the first batch (tolerance {check['tolerance']:.0e}, relative): {status}")
        print(f"  {'model':<6}{'charrnn loss':>16}{'torch loss':>16}{'|loss diff|':>13}"
              f"{'|grad diff|':>13}{'|state diff|':>14}  verdict")
        for row in check["rows"]:
            if not row["same_ids"]:
                verdict = "MISMATCH: the sides read different characters"
            elif not row["same_math"]:
                verdict = "differs by design (GRU variants); informational"
            else:
                verdict = "OK" if row["ok"] else "MISMATCH"
            print(f"  {row['model']:<6}{row['charrnn_loss']:>16.9f}{row['torch_loss']:>16.9f}"
                  f"{row['loss_rel_diff']:>13.1e}{row['grad_rel_diff']:>13.1e}"
                  f"{row['state_rel_diff']:>14.1e}  {verdict}")
        print("  relative: max |difference| / max |charrnn's value|; gradients over every "
              "parameter (unclipped), state: h (and c) after the batch")
        print()
    print(f"{'model':<6}{'configuration':<22}{'charrnn chars/s':>16}{'(min-max)':>20}"
          f"{'torch chars/s':>15}{'(min-max)':>20}{'charrnn/torch':>15}")
    for row in result["benchmark"]:
        c = row["sides"]["charrnn"]
        line = (f"{row['model']:<6}{row['config']:<22}{fmt(c['median']):>16}"
                f"{fmt(c['min']) + '-' + fmt(c['max']):>20}")
        if "torch" in row["sides"]:
            t = row["sides"]["torch"]
            r = row["ratio"]
            line += (f"{fmt(t['median']):>15}{fmt(t['min']) + '-' + fmt(t['max']):>20}"
                     f"{r['median_of_ratios']:>14.2f}x")
        else:
            line += f"{'-':>15}{'':>20}{'-':>15}"
        print(line)
    if any("ratio" in row for row in result["benchmark"]):
        print("charrnn/torch: median of the per-repeat ratios; per-repeat ranges and the ratio of "
              "medians:")
        for row in result["benchmark"]:
            if "ratio" in row:
                r = row["ratio"]
                print(f"  {row['model']}: {min(r['per_repeat']):.2f}-{max(r['per_repeat']):.2f}, "
                      f"ratio of medians {r['ratio_of_medians']:.2f}x")
    print("after timing, last loss / smooth loss per side (informational: both train; the "
          "clip and, for gru, the cell differ):")
    for row in result["benchmark"]:
        parts = ", ".join(f"{key} {s['last_loss']:.2f} / {s['smooth_loss']:.2f} "
                          f"({s['parameters']:,} parameters)"
                          for key, s in row["sides"].items())
        print(f"  {row['model']} after {row['updates_per_side']} updates: {parts}")
    parts = []
    for row in result["benchmark"]:
        c = row["sides"]["charrnn"]
        part = f"{row['model']} charrnn {fmt(c['median'])}"
        if "torch" in row["sides"]:
            part += (f", torch {fmt(row['sides']['torch']['median'])}, "
                     f"{row['ratio']['median_of_ratios']:.2f}x")
        parts.append(part)
    print(f"summary (median chars/s, charrnn/torch): {'; '.join(parts)}")
    if check is not None and not check["ok"]:
        print()
        print(f"WARNING: from the same weights the sides' losses, gradients or states disagree "
              f"beyond {check['tolerance']:.0e}; the speed comparison is not of the same "
              "computation.")


# -- the command ----------------------------------------------------------------------------------


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lstm,gru,rnn",
                        help="comma-separated models to measure, from lstm, gru, rnn "
                             "[default: lstm,gru,rnn]")
    parser.add_argument("--backend", default="numpy",
                        help="charrnn backend [default: numpy]; with cupy, torch runs on cuda "
                             "when it sees a GPU")
    parser.add_argument("--torch-device", default=None,
                        help="device of the PyTorch side [default: cpu with --backend numpy, "
                             "else cuda if available]")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS/OpenMP threads for both sides (sets OMP_NUM_THREADS, "
                             "OPENBLAS_NUM_THREADS, MKL_NUM_THREADS before numpy and torch load, "
                             "and torch.set_num_threads) [default: leave the environment alone]")
    parser.add_argument("--data", default=None,
                        help="text file to train on [default: charrnn's embedded corpus, as "
                             "`charrnn run` uses]")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per side (>= 3)")
    parser.add_argument("--updates", type=int, default=10, help="updates per timed repeat")
    parser.add_argument("--warmup", type=int, default=3, help="untimed updates per side first")
    parser.add_argument("--settle", type=float, default=0.25,
                        help="seconds to sleep, untimed, before each timed block [default: 0.25]")
    parser.add_argument("--tolerance", type=float, default=1e-9,
                        help="largest relative difference allowed in the float64 sanity check")
    parser.add_argument("--no-check", action="store_true", help="skip the sanity check")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in SPECS]
    if not models or unknown:
        parser.error(f"--models takes a comma-separated list from {', '.join(SPECS)}; got "
                     f"{args.models!r}")
    args.models = list(dict.fromkeys(models))
    if args.repeats < 3:
        parser.error("--repeats must be at least 3 (the medians need them)")
    if args.updates < 1:
        parser.error("--updates must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    if args.settle < 0:
        parser.error("--settle must not be negative")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        corpus = load_corpus(args.data, "utf-8", SEQ_LENGTH)
        backend = make_backend(args.backend, DTYPE)  # fail early, with charrnn's one-line message
        TextStream(backend, corpus.ids, BATCH, SEQ_LENGTH)  # and if the text is too short
    except CharrnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    torch, torch_missing = import_torch()
    torch_device = None
    if torch is not None:
        try:
            torch_device = resolve_torch_device(torch, args.torch_device, args.backend)
        except CharrnnError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        torch.manual_seed(SEED)
    if torch_missing and args.json:
        print(torch_missing, file=sys.stderr)  # the one line; stdout stays JSON
    threads = set_threads(torch, args.threads)

    env: Dict[str, Any] = {
        "charrnn": charrnn.__version__, "numpy": np.__version__, "numpy_blas": numpy_blas(),
        "torch": torch.__version__ if torch is not None else "not installed",
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}",
        "cpu": cpu_name(), "cpu_cores": cpu_count(),
    }
    if torch is not None:
        env["torch_blas"] = torch_blas(torch)
        if torch_device.startswith("cuda"):
            index = torch.device(torch_device).index
            env["gpu"] = (f"{torch.cuda.get_device_name(index)}, CUDA {torch.version.cuda}, "
                          f"cuDNN {torch.backends.cudnn.version()}")
    result: Dict[str, Any] = {
        "config": {"data": corpus.source, "characters": len(corpus.text),
                   "vocab_size": corpus.vocab_size, "batch": BATCH, "seq_length": SEQ_LENGTH,
                   "eta": ETA, "clip": CLIP, "dtype": DTYPE, "seed": SEED,
                   "models": args.models, "backend": args.backend,
                   "torch_device": torch_device, "warmup": args.warmup, "settle": args.settle,
                   "repeats": args.repeats, "updates": args.updates},
        "environment": env, "threads": threads,
        "backend_describe": backend.describe(),
        "torch_skipped": torch_missing,
    }
    specs = [SPECS[m] for m in args.models]
    # Overflow in a diverging run would be a result, not a warning to print mid-table.
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if torch is not None and not args.no_check:
            rows = []
            for spec in specs:
                row = same_math_check(torch, spec, corpus, args.backend, torch_device)
                row["ok"] = judge(row, args.tolerance)
                rows.append(row)
            result["sanity"] = {"tolerance": args.tolerance, "rows": rows,
                                "ok": all(r["ok"] for r in rows)}
        result["benchmark"] = [bench_model(torch, spec, corpus, args.backend, torch_device,
                                           args.warmup, args.repeats, args.updates,
                                           args.settle)
                               for spec in specs]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0 if result.get("sanity", {"ok": True})["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
