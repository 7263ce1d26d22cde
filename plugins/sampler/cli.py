"""``charrnn sample``: text from a saved checkpoint, through ``charrnn.load``."""
from __future__ import annotations

import sys
from typing import Optional

import click
from charrnn.console import echo
from charrnn.errors import CharrnnError
from charrnn.options import POSITIVE_FLOAT
from charrnn.sampling import MAX_SAMPLE

from . import read_prime


def register(cli) -> None:
    from charrnn.cli import RegistryChoice

    @cli.command("sample")
    @click.option("--checkpoint", "checkpoint", required=True, metavar="PATH",
                  help="A checkpoint file, or a run directory (its best.npz, else latest.npz).")
    @click.option("--length", type=click.IntRange(min=1, max=MAX_SAMPLE), default=1000,
                  show_default=True,
                  help="Characters to generate.")
    @click.option("--temperature", type=POSITIVE_FLOAT, default=1.0, show_default=True,
                  help="Divides the network's scores before the softmax: below 1 the text is "
                       "more conservative, above 1 more varied.")
    @click.option("--top-k", type=click.IntRange(min=1), default=None,
                  help="Sample only among the k likeliest characters.")
    @click.option("--prime", type=str, default=None,
                  help="Text to feed the network first, from the hidden state training had "
                       "reached, printed before what it generates (without it, generation goes "
                       "on from that state).")
    @click.option("--prime-file", type=str, default=None, metavar="PATH",
                  help="A file whose text is the prime, instead of --prime.")
    @click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                  help="Seed of the random draws: the same checkpoint, options and seed give "
                       "the same text.")
    @click.option("--backend", type=RegistryChoice("backend"), default="numpy",
                  show_default=True, help="Array backend to generate with.")
    def sample_cmd(checkpoint: str, length: int, temperature: float, top_k: Optional[int],
                   prime: Optional[str], prime_file: Optional[str], seed: int,
                   backend: str) -> None:
        """Generate text from a saved checkpoint."""
        from charrnn.generate import load

        if sys.stdout is None:  # started with its standard output closed (`>&-`)
            raise CharrnnError("standard output is closed, so the text would be lost; run "
                               "charrnn sample with its output going somewhere (a terminal, a "
                               "file, a pipe)")
        generator = load(checkpoint, backend=backend)
        prime_text = read_prime(prime, prime_file)
        chars = generator.stream(length, temperature=temperature, top_k=top_k, prime=prime_text,
                                 seed=seed)
        # Printed as it is made: a long sample shows at once, and a pipe's reader gets it early.
        echo(prime_text, end="")
        for char in chars:
            echo(char, end="")
        echo()

