"""``charrnn gradcheck``: the gradient check on its own, with its full table."""
from __future__ import annotations

from typing import Optional

import click
import charrnn.plugins.gradcheck as plugin
from charrnn.options import POSITIVE_FLOAT

from . import (DEFAULT_HIDDEN, DEFAULT_SEQ_LENGTH, DEFAULT_STEP, DEFAULT_THRESHOLD,
               GradCheckFailed, check_dtype, describe, format_table,
               gradient_check, verdict, worst)


def register(cli) -> None:
    from charrnn.cli import RegistryChoice

    @cli.command("gradcheck")
    @click.option("--data", type=str, default=None,
                  help="Text file whose start is the check's sequence [default: the Python "
                       "language reference shipped with CPython].")
    @click.option("--encoding", default="utf-8", show_default=True, help="Encoding of --data.")
    @click.option("--backend", type=RegistryChoice("backend"), default="numpy",
                  show_default=True, help="Array backend whose gradients to check.")
    @click.option("--model", type=RegistryChoice("model"), default="rnn", show_default=True,
                  help="Model whose gradients to check.")
    @click.option("--hidden", type=click.IntRange(min=1), default=DEFAULT_HIDDEN,
                  show_default=True, help="Hidden size m of the checked model.")
    @click.option("--layers", type=click.IntRange(min=1), default=1, show_default=True,
                  help="Layers of the checked model.")
    @click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
                  help="Sequences checked at once.")
    @click.option("--seq-length", type=click.IntRange(min=1), default=DEFAULT_SEQ_LENGTH,
                  show_default=True, help="Characters in each checked sequence.")
    @click.option("--step", type=POSITIVE_FLOAT, default=DEFAULT_STEP, show_default=True,
                  help="Finite-difference step h.")
    @click.option("--entries", type=click.IntRange(min=0), default=0, show_default=True,
                  help="Entries checked per parameter (0: all).")
    @click.option("--threshold", type=POSITIVE_FLOAT, default=DEFAULT_THRESHOLD,
                  show_default=True, help="Largest relative error that passes.")
    @click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                  help="Seed of the weights and of the choice of entries.")
    @click.option("--sigma", type=POSITIVE_FLOAT, default=None,
                  help="Standard deviation of the weights and biases [default: the model's own: "
                       "0.1 for rnn, 0.3 for lstm and gru] (a run's 0.01 keeps tanh nearly "
                       "linear, which hides some errors).")
    @click.option("--dropout", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.0,
                  show_default=True,
                  help="Check with units dropped as in training (the same masks for every loss "
                       "of the check), which checks the dropout's backward pass too.")
    @click.option("--embedding", type=click.IntRange(min=0), default=0, show_default=True,
                  help="Check a model that reads characters through an embedding of this many "
                       "dimensions (lstm, gru), the table included.")
    @click.option("--dtype", type=click.Choice(["float64", "float32"]), default=None,
                  help="Precision of the check [default: float64 where the backend supports it]; "
                       "float32 needs a larger --step and --threshold.")
    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    def gradcheck_cmd(data: Optional[str], encoding: str, backend: str, model: str, hidden: int,
                      layers: int, batch_size: int, seq_length: int, step: float, entries: int,
                      threshold: float, seed: int, sigma: float, dropout: float,
                      embedding: int, dtype: Optional[str], as_json: bool) -> None:
        """Check a backend's gradients against centred finite differences.

        Runs in float64 where the backend supports it. Prints a table of the largest relative
        error |ga-gn| / (|ga|+|gn|) and absolute error per parameter, then PASS or FAIL; exits
        with status 1 on FAIL.
        """
        import json

        from charrnn.data import load_corpus
        from charrnn.registry import get_registry
        from charrnn.assembly import make_backend

        corpus = load_corpus(data, encoding, seq_length)
        registry = get_registry()
        known = backend in registry.names("backend")  # else make_backend says what is available
        if dtype is None:
            dtype = check_dtype(registry.get("backend", backend), "float32") if known \
                else "float64"
        be = make_backend(backend, dtype)
        steps = seq_length * batch_size * layers
        # Read at the call (not imported by value), so that it can be changed for a test.
        if steps >= plugin.LONG_CHECK_STEPS:  # legal, but minutes of silence look like a hang
            click.echo(f"gradient check of {model} over {seq_length:,} steps x {batch_size} "
                       f"stream(s) x {layers} layer(s): two forward passes for each checked "
                       "entry; this takes a while", err=True)
        result = gradient_check(be, corpus.ids, corpus.vocab_size, model=model, hidden=hidden,
                                layers=layers, batch=batch_size, seq_length=seq_length,
                                step=step, entries=entries, seed=seed, sigma=sigma,
                                threshold=threshold, dropout=dropout, embedding=embedding)
        if as_json:
            click.echo(json.dumps(result, indent=2))
        else:
            click.echo(describe(result))
            click.echo(format_table(result))
            click.echo(verdict(result))
        if not result["passed"]:
            # One line on stderr and exit status 1, through the launcher's handling of
            # CharrnnError. (``click.exceptions.Exit(1)`` would exit 0: the launcher runs Click
            # with standalone_mode=False, where Click returns that code instead of raising.)
            name, rel = worst(result)
            raise GradCheckFailed(f"gradient check failed: max relative error {rel:.1e} in "
                                  f"{name} exceeds --threshold {threshold:g}")
