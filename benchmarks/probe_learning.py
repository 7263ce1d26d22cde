"""How fast a 2 x 256 LSTM learns per update in charrnn and in PyTorch, with time taken out.

Why this exists: the race (``race.py``) mixes two things, how many updates a contestant fits in
its budget and how much each update teaches it. This script isolates the second. Every variant
trains ``--updates`` updates of PyTorch's race configuration (batch 32 x 64, Adam 2e-3, gradient
norm clipped at 5, float32) on the same stripes of the same training text, and reports its mean
training loss per character over the last 50 updates. The variants are:

* ``torch``: ``nn.LSTM`` + ``nn.Linear`` as PyTorch initialises them (two biases per layer);
* ``torch-one-bias``: the same with ``bias_hh`` folded into ``bias_ih`` and frozen, so each gate
  has one trained bias;
* ``charrnn``: charrnn's LSTM as ``charrnn run`` builds it (two biases, all starting at zero);
* ``charrnn-forget-1``: the same with the forget gate's bias starting at 1, as char-rnn does;
* ``charrnn-torch-init``: charrnn's LSTM started from PyTorch's initial weights (both biases).

These figures chose the gated cells' two biases and zero forget bias; the docstrings of
``models/gated.py`` and ``models/lstm.py`` quote them.

    python benchmarks/probe_learning.py --threads 2
    python benchmarks/probe_learning.py --updates 500 --variants torch,charrnn
"""
from __future__ import annotations

import sys

from pin_threads import pin_threads

if __name__ == "__main__":
    pin_threads(sys.argv[1:], __file__)

import argparse  # noqa: E402
import os  # noqa: E402
from typing import Any, Dict, List, Optional  # noqa: E402

import numpy as np  # noqa: E402
from bench_batched import import_torch, stripes  # noqa: E402
from charrnn.data import load_corpus  # noqa: E402
from charrnn import RunConfig  # noqa: E402
from charrnn.assembly import build_trainer, make_backend, make_model, split_ids  # noqa: E402
from charrnn.data import Corpus  # noqa: E402

HIDDEN, LAYERS, BATCH, T, LR, CLIP = 256, 2, 32, 64, 2e-3, 5.0
SHARED_TEXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                           "data", "tinyshakespeare.txt")
VARIANTS = ("torch", "torch-one-bias", "charrnn", "charrnn-forget-1", "charrnn-torch-init")


def tail_mean(losses: List[float]) -> float:
    return float(np.mean(losses[-50:]))


def run_charrnn(train: np.ndarray, K: int, updates: int, params: Optional[Dict] = None) -> float:
    config = RunConfig(model="lstm", hidden=HIDDEN, layers=LAYERS, batch_size=BATCH,
                       seq_length=T, optimizer="adam", eta=LR, clip=0.0, clip_norm=CLIP,
                       dtype="float32", seed=0, iterations=10**9)
    corpus = Corpus(chars=[chr(i) for i in range(K)], ids=train, source="probe")
    trainer = build_trainer(config, corpus=corpus, plugins=False)
    if params is not None:
        trainer.model.set_params(params)
    return tail_mean([float(trainer.train_step()) / T for _ in range(updates)])


def torch_modules(torch: Any, K: int, seed: int = 0):
    torch.manual_seed(seed)
    return torch.nn.LSTM(K, HIDDEN, LAYERS), torch.nn.Linear(HIDDEN, K)


def run_torch(torch: Any, train: np.ndarray, K: int, updates: int, one_bias: bool) -> float:
    F = torch.nn.functional
    lstm, head = torch_modules(torch, K)
    if one_bias:
        with torch.no_grad():
            for layer in range(LAYERS):
                b_ih, b_hh = getattr(lstm, f"bias_ih_l{layer}"), getattr(lstm, f"bias_hh_l{layer}")
                b_ih.add_(b_hh)
                b_hh.zero_()
                b_hh.requires_grad_(False)
    params = [p for p in [*lstm.parameters(), *head.parameters()] if p.requires_grad]
    opt = torch.optim.Adam(params, lr=LR)
    data = torch.from_numpy(stripes(train, BATCH).astype(np.int64))
    pos, state, losses = 0, None, []
    for _ in range(updates):
        if pos + T + 1 > data.shape[0]:
            pos, state = 0, None
        x, y = data[pos : pos + T], data[pos + 1 : pos + T + 1]
        pos += T
        out, state = lstm(F.one_hot(x, K).float(), state)
        state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(head(out).reshape(-1, K), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        losses.append(loss.item())
    return tail_mean(losses)


def torch_init_for_charrnn(torch: Any, K: int) -> Dict[str, np.ndarray]:
    """PyTorch's initial weights under charrnn's names (gates i f g o reordered to i f o n)."""
    lstm, head = torch_modules(torch, K)
    sd = {k: v.detach().numpy() for k, v in lstm.state_dict().items()}

    def blocks(a: np.ndarray, axis: int) -> np.ndarray:
        m = a.shape[axis] // 4
        index = np.concatenate([np.arange(k * m, (k + 1) * m) for k in (0, 1, 3, 2)])
        return np.take(a, index, axis=axis)

    params: Dict[str, np.ndarray] = {}
    for layer in range(LAYERS):
        n = str(layer + 1)
        params["Wx" + n] = blocks(sd[f"weight_ih_l{layer}"].T, 1)
        params["Wh" + n] = blocks(sd[f"weight_hh_l{layer}"].T, 1)
        params["b" + n] = blocks(sd[f"bias_ih_l{layer}"], 0)
        params["bh" + n] = blocks(sd[f"bias_hh_l{layer}"], 0)
    params["Wy"] = head.weight.detach().numpy().T.copy()
    params["by"] = head.bias.detach().numpy().copy()
    return params


def forget_one(K: int) -> Dict[str, np.ndarray]:
    be = make_backend("numpy", "float32")
    params = make_model("lstm", be, K, {"hidden": HIDDEN, "layers": LAYERS, "seed": 0}).get_params()
    for layer in range(1, LAYERS + 1):
        params[f"b{layer}"][HIDDEN : 2 * HIDDEN] = 1.0
    return params


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="[default: Tiny Shakespeare when present]")
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (set first)")
    opts = parser.parse_args()
    data = opts.data or (SHARED_TEXT if os.path.exists(SHARED_TEXT) else None)
    corpus = load_corpus(data, "utf-8", T)
    train, _ = split_ids(np.asarray(corpus.ids), 0.1, T)
    K = corpus.vocab_size
    torch, why = import_torch()
    if torch is not None and opts.threads:
        torch.set_num_threads(opts.threads)
    print(f"{corpus.source}, first 90%; LSTM {LAYERS}x{HIDDEN}, batch {BATCH} x {T}, Adam {LR:g}, "
          f"norm clip {CLIP:g}, float32; mean training loss per character over updates "
          f"{max(0, opts.updates - 50)}-{opts.updates}")
    for variant in opts.variants.split(","):
        if variant.startswith("torch") and torch is None:
            print(f"  {variant:<20} skipped: {why}")
            continue
        if variant == "torch":
            loss = run_torch(torch, train, K, opts.updates, one_bias=False)
        elif variant == "torch-one-bias":
            loss = run_torch(torch, train, K, opts.updates, one_bias=True)
        elif variant == "charrnn":
            loss = run_charrnn(train, K, opts.updates)
        elif variant == "charrnn-forget-1":
            loss = run_charrnn(train, K, opts.updates, forget_one(K))
        elif variant == "charrnn-torch-init":
            if torch is None:
                print(f"  {variant:<20} skipped: {why}")
                continue
            loss = run_charrnn(train, K, opts.updates, torch_init_for_charrnn(torch, K))
        else:
            parser.error(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
        print(f"  {variant:<20} {loss:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
