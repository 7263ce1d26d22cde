"""The race: which gets the lowest validation loss in the same wall-clock budget on this CPU,
charrnn's recommended recipe or a plain PyTorch LSTM?

Why this exists: a user who wants good text from their own corpus picks whatever reaches the
lowest validation loss in the time they have. Throughput alone (``bench_batched.py``) does not say
that; the recipe (model, batch, learning rate and its schedule) matters as much. This script runs
the contestants one after the other, each for the same training budget, on the same text with the
same held-out split, and scores every one with the same evaluation.

The contestants:

* **charrnn, recipe**: the command the README recommends (:data:`RECIPE`), run as a user runs it,
  ``python -m charrnn run ... --time-limit BUDGET`` in a subprocess.
* **PyTorch**: ``nn.LSTM`` of 2 layers x 256 under an ``nn.Linear`` output, one-hot input, batch
  32 x sequence 64, ``F.cross_entropy`` (the mean), ``clip_grad_norm_(5)``, ``torch.optim.Adam``
  at 2e-3, float32, trained in this process until BUDGET seconds have passed. The batches are the
  text cut into 32 contiguous stripes, each stream's state carried from one update to the next
  (detached) and reset when the text wraps, as charrnn reads it.
* **charrnn, like for like**: the same model, batch, sequence, optimizer, learning rate, norm clip
  and dtype as the PyTorch side (:data:`LIKE_FOR_LIKE`), so that the difference from PyTorch is
  the implementation alone.
* **charrnn, recipe + embed** (``recipe-embed``): the recipe with ``--embedding``
  :data:`EMBEDDING`, which decides whether the preset reads characters through an embedding.
* **PyTorch, charrnn's recipe** (``torch-recipe``) and **the same with nn.Embedding input**
  (``torch-recipe-embed``, :data:`EMBEDDING` dimensions, as torch-rnn's ``wordvec_size``): the
  recipe's own model (``nn.LSTM``, ``nn.GRU`` or ``nn.RNN``, layers and hidden size), batch,
  sequence, Adam learning rate, its schedule over the same budget (cosine or linear to
  ``--lr-final`` of it, by training time, as charrnn's ``--lr-schedule`` runs it under a time
  limit) and its norm clip, read from the recipe's options. The recipe is charrnn's choice of
  everything; these show how much of its result is the recipe and how much the implementation.

How they are scored: the last ``--val-frac`` of the text (default 0.1, as ``charrnn run
--val-frac`` holds it out) is never trained on. After training, each model reads the whole
held-out text as one stream, its state carried across it from zero, and the score is the mean
cross-entropy per predicted character in nats (bits per character = nats / ln 2). The training
budget is training time: charrnn's gradient check, start-up and report are outside its
``--time-limit``, and PyTorch's clock starts at its first update.

Threads: ``--threads N`` (default: the CPU count) sets the BLAS variables before NumPy and torch
load, for this process and the charrnn subprocess, and ``torch.set_num_threads(N)``.

Examples::

    python benchmarks/race.py                                  # one race, 120 s a contestant
    python benchmarks/race.py --repeats 3 --json race.json     # medians of three races
    python benchmarks/race.py --budget 30 --only recipe        # a quick look at the recipe
    python benchmarks/race.py --recipe "--model gru --batch-size 64 ..."   # try another recipe

The default text is Tiny Shakespeare from the project's shared data folder when it is there
(``--data`` to pass another), otherwise charrnn's embedded corpus. torch is optional: without it
the script says so and races charrnn alone.
"""
from __future__ import annotations

import os
import sys

from pin_threads import THREAD_VARS, pin_threads

if __name__ == "__main__":
    pin_threads(sys.argv[1:], __file__)

# Everything below may load a BLAS: it must come after pin_threads.
import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any, Dict, List, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402
from bench_batched import cpu_count, cpu_name, import_torch, set_threads, stripes  # noqa: E402
from charrnn.checkpoint import load_checkpoint, resolve_checkpoint_path  # noqa: E402
from charrnn.data import load_corpus  # noqa: E402
import charrnn  # noqa: E402
from charrnn.assembly import split_ids  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_TEXT = os.path.join(HERE, "..", "..", "shared", "data", "tinyshakespeare.txt")

#: The recipe the README recommends: the ``quick`` preset (``plugins/builtin_presets.py``), whose own
#: ``--time-limit`` and ``--val-frac`` the race's options replace.
RECIPE = "--preset quick"
#: PyTorch's configuration, in charrnn's options.
LIKE_FOR_LIKE = ("--model lstm --layers 2 --hidden 256 --batch-size 32 --seq-length 64 "
                 "--optimizer adam --eta 2e-3 --clip 0 --clip-norm 5 --dtype float32")
#: The PyTorch side's settings (those of LIKE_FOR_LIKE).
TORCH = {"hidden": 256, "layers": 2, "batch": 32, "seq_length": 64, "lr": 2e-3, "clip_norm": 5.0}

#: The embedding of the PyTorch recipe contestant with nn.Embedding input (torch-rnn's default).
EMBEDDING = 64

CONTESTANTS = ("recipe", "recipe-embed", "torch", "like", "torch-recipe", "torch-recipe-embed")
LABELS = {"recipe": "charrnn, recipe", "recipe-embed": "charrnn, recipe + embed",
          "torch": "PyTorch nn.LSTM", "like": "charrnn, like for like",
          "torch-recipe": "PyTorch, the recipe", "torch-recipe-embed": "PyTorch, recipe + embed"}
EVAL_CHUNK = 1000


# -- charrnn ----------------------------------------------------------------------------------


def run_charrnn(args: str, data: Optional[str], val_frac: float, budget: float, workdir: str,
                name: str) -> Dict[str, Any]:
    """Train with ``charrnn run ARGS`` for ``budget`` seconds; the run directory it left."""
    out = os.path.join(workdir, name)
    cmd = [sys.executable, "-m", "charrnn", "run", *shlex.split(args), "--val-frac", str(val_frac),
           "--time-limit", str(budget), "--out", out, "--quiet"]
    if data is not None:
        cmd += ["--data", data]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"race: charrnn run failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}\n"
                         f"command: {shlex.join(cmd)}")
    return {"run_dir": out, "command": shlex.join(cmd), "wall_s": time.perf_counter() - started}


def evaluate_charrnn(run_dir: str, val_ids: np.ndarray, chars: Sequence[str]) -> Dict[str, Any]:
    """Mean cross-entropy per character over ``val_ids`` read as one stream, from the run's
    latest checkpoint."""
    ckpt = load_checkpoint(resolve_checkpoint_path(run_dir, prefer="latest"))
    if list(ckpt.vocab) != list(chars):
        raise SystemExit(f"race: the run in {run_dir} has another alphabet than the race's text")
    # charrnn.load scores a text as the run scores its held-out text at batch 1.
    val_loss = charrnn.load(ckpt.path).loss("".join(chars[int(i)] for i in val_ids))
    meta = ckpt.meta
    seconds = float(meta["train_seconds"])
    chars_trained = int(meta["update"]) * int(meta["batch_size"]) * int(ckpt.config["seq_length"])
    return {"val_loss": val_loss, "updates": int(meta["update"]), "train_s": seconds,
            "chars_per_s": chars_trained / seconds if seconds else 0.0}


# -- PyTorch ----------------------------------------------------------------------------------


def recipe_settings(recipe: str) -> Dict[str, Any]:
    """The PyTorch side's settings for a charrnn recipe (its ``charrnn run`` options, a preset
    expanded): model, layers, hidden size, batch, sequence, learning rate, its schedule, norm
    clip."""
    from charrnn.registry import get_registry

    words = shlex.split(recipe)
    if "--preset" in words:  # the preset's options first; the recipe's own override them
        i = words.index("--preset")
        preset = get_registry().get("preset", words[i + 1])
        words = shlex.split(preset.args) + words[:i] + words[i + 2:]
    given: Dict[str, str] = {}
    for i, word in enumerate(words):
        if word.startswith("--") and i + 1 < len(words) and not words[i + 1].startswith("--"):
            given[word[2:].replace("-", "_")] = words[i + 1]
    optimizer = given.get("optimizer", "adagrad")
    if optimizer != "adam":
        raise SystemExit(f"race: the PyTorch recipe contestants run Adam; the recipe uses "
                         f"{optimizer}")
    return {"model": given.get("model", "rnn"), "hidden": int(given.get("hidden", 100)),
            "layers": int(given.get("layers", 1)), "batch": int(given.get("batch_size", 1)),
            "seq_length": int(given.get("seq_length", 25)), "lr": float(given["eta"]),
            "schedule": given.get("lr_schedule", "constant"),
            "final": float(given.get("lr_final", 0.1)),
            "clip_norm": float(given.get("clip_norm", 0) or 0)}


def race_torch(torch: Any, train_ids: np.ndarray, val_ids: np.ndarray, K: int, budget: float,
               seed: int, cfg: Optional[Dict[str, Any]] = None,
               embedding: Optional[int] = None) -> Dict[str, Any]:
    """Train a PyTorch model (:data:`TORCH`'s plain LSTM, or ``cfg``'s) for ``budget`` seconds,
    then score it like charrnn. Input is one-hot, or an ``nn.Embedding`` of ``embedding``
    dimensions; the learning rate follows ``cfg``'s schedule over the budget."""
    nn, F = torch.nn, torch.nn.functional
    torch.manual_seed(seed)
    cfg = {"model": "lstm", "schedule": "constant", "final": 1.0, **TORCH, **(cfg or {})}
    cell = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cfg["model"]]
    embed = nn.Embedding(K, embedding) if embedding else None
    rnn = cell(embedding or K, cfg["hidden"], cfg["layers"])
    head = nn.Linear(cfg["hidden"], K)
    params = list(rnn.parameters()) + list(head.parameters()) + \
        (list(embed.parameters()) if embed is not None else [])
    opt = torch.optim.Adam(params, lr=cfg["lr"])

    def inputs(ids: Any) -> Any:
        return embed(ids) if embed is not None else F.one_hot(ids, K).float()

    def rate(progress: float) -> float:
        final, p = cfg["final"], min(max(progress, 0.0), 1.0)
        if cfg["schedule"] == "cosine":
            return cfg["lr"] * (final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * p)))
        if cfg["schedule"] == "linear":
            return cfg["lr"] * (1.0 - (1.0 - final) * p)
        return cfg["lr"]

    data = torch.from_numpy(stripes(train_ids, cfg["batch"]).astype(np.int64))
    T, L = cfg["seq_length"], data.shape[0]
    pos, state, updates = 0, None, 0
    started = time.perf_counter()
    while time.perf_counter() - started < budget:
        for group in opt.param_groups:  # as charrnn's schedule: by the training time spent
            group["lr"] = rate((time.perf_counter() - started) / budget)
        if pos + T + 1 > L:  # the text wraps: every stream starts again from a zero state
            pos, state = 0, None
        x, y = data[pos : pos + T], data[pos + 1 : pos + T + 1]
        pos += T
        out, state = rnn(inputs(x), state)
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        loss = F.cross_entropy(head(out).reshape(-1, K), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg["clip_norm"]:
            nn.utils.clip_grad_norm_(params, cfg["clip_norm"])
        opt.step()
        updates += 1
    seconds = time.perf_counter() - started
    with torch.no_grad():
        ids = torch.from_numpy(val_ids.astype(np.int64))
        state, total, n = None, 0.0, len(val_ids) - 1
        for start in range(0, n, EVAL_CHUNK):
            stop = min(start + EVAL_CHUNK, n)
            out, state = rnn(inputs(ids[start:stop])[:, None, :], state)
            total += float(F.cross_entropy(head(out[:, 0]), ids[start + 1 : stop + 1],
                                           reduction="sum"))
    module = {"lstm": "nn.LSTM", "gru": "nn.GRU", "rnn": "nn.RNN"}[cfg["model"]]
    feed = f"nn.Embedding({K}, {embedding})" if embedding else "one-hot"
    schedule = "" if cfg["schedule"] == "constant" else \
        f" ({cfg['schedule']} to {cfg['final']:g} of it over the budget)"
    return {"val_loss": total / n, "updates": updates, "train_s": seconds,
            "chars_per_s": updates * cfg["batch"] * T / seconds,
            "command": (f"{module}({embedding or K}, {cfg['hidden']}, {cfg['layers']}) + "
                        f"nn.Linear, {feed} input, batch {cfg['batch']} x {T}, Adam "
                        f"{cfg['lr']:g}{schedule}, clip_grad_norm_({cfg['clip_norm']:g}), "
                        "float32")}


# -- the race ---------------------------------------------------------------------------------


def one_race(opts: argparse.Namespace, torch: Any, corpus: Any, train: np.ndarray,
             val: np.ndarray, workdir: str, repeat: int) -> Dict[str, Dict[str, Any]]:
    results: Dict[str, Dict[str, Any]] = {}
    for who in opts.only:
        if who.startswith("torch"):
            if torch is None:
                continue
            time.sleep(opts.settle)
            cfg = recipe_settings(opts.recipe) if who != "torch" else None
            results[who] = race_torch(torch, train, val, corpus.vocab_size, opts.budget,
                                      opts.seed + repeat, cfg,
                                      EMBEDDING if who == "torch-recipe-embed" else None)
        else:
            args = {"recipe": opts.recipe, "like": LIKE_FOR_LIKE,
                    "recipe-embed": f"{opts.recipe} --embedding {EMBEDDING}"}[who]
            args = f"{args} --seed {opts.seed + repeat}"
            time.sleep(opts.settle)
            run = run_charrnn(args, opts.data, opts.val_frac, opts.budget, workdir,
                              f"{who}-{repeat}")
            results[who] = {**evaluate_charrnn(run["run_dir"], val, corpus.chars),
                            "command": "charrnn run " + args}
        r = results[who]
        print(f"  race {repeat + 1}: {LABELS[who]:<24} val {r['val_loss']:.4f} nats/char "
              f"({r['val_loss'] / math.log(2):.3f} bpc), {r['updates']} updates in "
              f"{r['train_s']:.0f} s, {r['chars_per_s']:,.0f} chars/s", flush=True)
    return results


def summarise(races: List[Dict[str, Dict[str, Any]]]) -> Dict[str, Dict[str, Any]]:
    out: Dict[str, Dict[str, Any]] = {}
    for who in CONTESTANTS:
        rows = [r[who] for r in races if who in r]
        if rows:
            out[who] = {key: statistics.median(row[key] for row in rows)
                        for key in ("val_loss", "updates", "train_s", "chars_per_s")}
            out[who]["runs"] = [row["val_loss"] for row in rows]
            out[who]["command"] = rows[0]["command"]
    return out


def print_summary(summary: Dict[str, Dict[str, Any]], n: int) -> None:
    print(f"\nmedians of {n} race(s):")
    print(f"  {'contestant':<24} {'val nats/char':>13} {'bpc':>6} {'updates':>8} {'chars/s':>9}"
          f"   per race")
    for who, r in summary.items():
        runs = " ".join(f"{v:.4f}" for v in r["runs"])
        print(f"  {LABELS[who]:<24} {r['val_loss']:>13.4f} {r['val_loss'] / math.log(2):>6.3f} "
              f"{r['updates']:>8.0f} {r['chars_per_s']:>9,.0f}   {runs}")
    for who, r in summary.items():
        print(f"  {LABELS[who]}: {r['command']}")
    peers = [who for who in ("torch-recipe", "torch-recipe-embed") if who in summary]
    if "recipe" in summary and peers:
        best = min(peers, key=lambda who: summary[who]["val_loss"])
        paired = statistics.median(a - b for a, b in zip(summary["recipe"]["runs"],
                                                           summary[best]["runs"]))
        d = summary["recipe"]["val_loss"] - summary[best]["val_loss"]
        print(f"target: recipe ahead of the better PyTorch recipe contestant ({LABELS[best]}) "
              f"by 0.05 or more: difference of medians {d:+.4f}, median of per-race differences "
              f"{paired:+.4f} nats/char -> {'met' if max(d, paired) <= -0.05 else 'NOT met'}")
    if "torch" in summary:
        ref = summary["torch"]["val_loss"]
        for who, goal in (("recipe", "recipe <= PyTorch"),
                          ("like", "like for like within 0.02 of PyTorch")):
            if who not in summary:
                continue
            d = summary[who]["val_loss"] - ref
            # Race k's contestants share its seed offset and its stretch of machine time, so
            # the per-race differences are the paired comparison.
            paired = statistics.median(a - b for a, b in zip(summary[who]["runs"],
                                                               summary["torch"]["runs"]))
            limit = 0.0 if who == "recipe" else 0.02
            print(f"target: {goal}: difference of medians {d:+.4f}, median of per-race "
                  f"differences {paired:+.4f} nats/char -> "
                  f"{'met' if max(d, paired) <= limit else 'met by the paired figure' if min(d, paired) <= limit else 'NOT met'}")
    if "recipe" in summary:
        v = summary["recipe"]["val_loss"]
        print(f"aim: recipe at 1.50 or lower: {v:.4f} -> {'met' if v <= 1.50 else 'not met'}")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None,
                        help="text to race on [default: Tiny Shakespeare from the shared data "
                             "folder when present, else the embedded corpus]")
    parser.add_argument("--budget", type=float, default=120.0,
                        help="training seconds per contestant (default 120)")
    parser.add_argument("--val-frac", type=float, default=0.1,
                        help="held-out fraction at the end of the text (default 0.1)")
    parser.add_argument("--repeats", type=int, default=1, help="races to run (medians reported)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS and torch threads for every contestant [default: CPU count]")
    parser.add_argument("--only", default=",".join(CONTESTANTS),
                        help=f"contestants, comma-separated, from {','.join(CONTESTANTS)}")
    parser.add_argument("--recipe", default=RECIPE, help="charrnn run options of the recipe")
    parser.add_argument("--seed", type=int, default=0, help="seed of race 1 (race k adds k-1)")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds of quiet before each contestant (not timed)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write the results here")
    opts = parser.parse_args(argv)
    opts.only = [w.strip() for w in opts.only.split(",") if w.strip()]
    unknown = set(opts.only) - set(CONTESTANTS)
    if unknown or not opts.only:
        parser.error(f"--only takes {', '.join(CONTESTANTS)}; got {opts.only!r}")
    if opts.budget <= 0 or opts.repeats < 1 or not 0 < opts.val_frac < 1:
        parser.error("--budget and --repeats must be positive and --val-frac in (0, 1)")
    return opts


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts = parse_args(argv)
    if opts.threads is None:  # both sides get every core; set before anything computes
        opts.threads = cpu_count()
        for var in THREAD_VARS:
            os.environ.setdefault(var, str(opts.threads))
    if opts.data is None and os.path.exists(SHARED_TEXT):
        opts.data = os.path.abspath(SHARED_TEXT)
    torch, why = import_torch() if any(w.startswith("torch") for w in opts.only) \
        else (None, None)
    if why:
        print(f"note: {why}")
    threads = set_threads(torch, opts.threads)
    corpus = load_corpus(opts.data, "utf-8", 64)
    ids = np.asarray(corpus.ids)
    train, val = split_ids(ids, opts.val_frac, 64)
    print(f"race: {corpus.source} ({len(ids):,} characters, K={corpus.vocab_size}); last "
          f"{opts.val_frac:g} held out ({len(val):,} characters), scored as one stream")
    print(f"cpu: {cpu_name()}; threads: numpy's BLAS {threads['numpy_blas_threads']}, torch "
          f"{threads.get('torch_threads', '-')}; budget {opts.budget:g} s of training each")
    races = []
    with tempfile.TemporaryDirectory(prefix="charrnn-race-") as workdir:
        for repeat in range(opts.repeats):
            races.append(one_race(opts, torch, corpus, train, val, workdir, repeat))
    summary = summarise(races)
    print_summary(summary, len(races))
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as fh:
            json.dump({"budget_s": opts.budget, "threads": threads, "text": corpus.source,
                       "races": races, "summary": summary}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
