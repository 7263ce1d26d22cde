"""Text from a trained model, for programs: ``charrnn.load(path)`` returns a :class:`Generator`.

Generation starts where training stood, in the checkpoint's first stream: its hidden state and
the next character it would have read. A model trained with its state carried across sequences
has rarely seen a zero state and reads text from one badly (a trained course model: 9.1 nats per
character on an ordinary sentence from zero, 1.3 from its saved state), so a prime is fed from
that saved state too. :meth:`Generator.loss` is the exception: it scores a text from a zero state
carried across the text, exactly as a run scores its held-out text.
"""
from __future__ import annotations

import os
from typing import Iterator, List, Optional

import numpy

from .assembly import make_backend, model_from_checkpoint
from .checkpoint import Checkpoint, load_checkpoint, resolve_checkpoint_path
from .errors import CharrnnError, InvalidOption
from .evaluation import stream_loss
from .model import Model, State
from .sampling import MAX_SAMPLE, iter_sample_ids, warm_up


def checkpoint_state(ckpt: Checkpoint, model: Model) -> State:
    """The first stream's state saved in ``ckpt``, as a batch of one on ``model``'s backend."""
    try:
        state = model.state_from_host(ckpt.state, int(ckpt.meta.get("batch_size") or 1))
    except (ValueError, TypeError) as exc:
        raise CharrnnError(f"{ckpt.path}: its saved state does not fit its model ({exc}); the "
                           "file is damaged or was edited") from None
    return model.select_state(state, 0)


class Generator:
    """A trained model ready to write text and to score it.

    Build one with :func:`charrnn.load`. ``vocab`` is the model's alphabet, in id order;
    ``checkpoint`` the file it came from.
    """

    def __init__(self, ckpt: Checkpoint, backend: str = "numpy") -> None:
        self.checkpoint: str = ckpt.path or ""
        self.vocab: List[str] = list(ckpt.vocab)
        self._ckpt = ckpt
        self._lookup = {c: i for i, c in enumerate(self.vocab)}
        self.backend = make_backend(backend, ckpt.meta.get("dtype", "float64"))
        self.model = model_from_checkpoint(ckpt, self.backend)

    def __repr__(self) -> str:
        return (f"Generator({self.checkpoint!r}: {self.model.describe()}, "
                f"{len(self.vocab)} characters, update {self._ckpt.meta.get('update')})")

    def _ids(self, text: str, what: str) -> List[int]:
        for c in text:
            if c not in self._lookup:
                raise CharrnnError(f"{what} character {c!r} (U+{ord(c):04X}) is not in the "
                                   f"checkpoint's vocabulary; remove it from the {what}")
        return [self._lookup[c] for c in text]


    def stream(self, length: int, *, temperature: float = 1.0, top_k: Optional[int] = None,
               prime: str = "", seed: Optional[int] = None) -> Iterator[str]:
        """The characters of :meth:`sample`, one at a time, as they are made. The arguments are
        checked (and the prime read) at the call, before the first character is asked for."""
        _check_sampling(length, temperature, top_k, seed)
        rng = numpy.random.default_rng(seed)
        state = checkpoint_state(self._ckpt, self.model)
        if prime:
            ids = self._ids(prime, "prime")
            state = warm_up(self.model, state, ids)
            x = ids[-1]
        else:
            x = int(self._ckpt.meta.get("next_input_id", 0))
        drawn = iter_sample_ids(self.model, state, x, length, temperature=temperature,
                                top_k=top_k, rng=rng)
        return (self.vocab[i] for i in drawn)

    def sample(self, length: int, *, temperature: float = 1.0, top_k: Optional[int] = None,
               prime: str = "", seed: Optional[int] = None) -> str:
        """``length`` characters that follow ``prime`` (which is not repeated in the result).

        ``temperature`` divides the network's scores before the softmax (below 1: more
        conservative); ``top_k`` keeps only the k likeliest characters. The same checkpoint,
        arguments and ``seed`` give the same text, the text ``charrnn sample`` prints after the
        prime; ``seed`` None draws a fresh one.
        """
        return "".join(self.stream(length, temperature=temperature, top_k=top_k, prime=prime,
                                   seed=seed))

    def loss(self, text: str) -> float:
        """Nats per character of predicting each character of ``text`` from those before it,
        from a zero state carried across the whole text: what a run reports as its validation
        loss for the same held-out text at batch size 1. Divide by ln 2 for bits."""
        if len(text) < 2:
            raise CharrnnError("the text to score has fewer than two characters; pass a longer "
                               "text")
        ids = numpy.asarray(self._ids(text, "text"), dtype=numpy.int64)
        return float(stream_loss(self.model, ids, batch=1))


def _check_sampling(length: int, temperature: float, top_k: Optional[int],
                    seed: Optional[int]) -> None:
    """The checks ``charrnn sample`` makes of its options, with the same words."""
    import math

    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= MAX_SAMPLE:
        raise InvalidOption(f"Invalid value for 'length': {length!r} is not in the range "
                            f"1<=x<={MAX_SAMPLE}.")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
            not math.isfinite(temperature) or temperature <= 0:
        raise InvalidOption(f"Invalid value for 'temperature': {temperature!r} is not in the "
                            "range x>0.")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InvalidOption(f"Invalid value for 'top_k': {top_k!r} is not in the range x>=1.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InvalidOption(f"Invalid value for 'seed': {seed!r} is not in the range x>=0.")


def load(path: str, *, backend: str = "numpy") -> Generator:
    """The model saved at ``path`` (a checkpoint file, or a run directory: its ``best.npz``,
    else ``latest.npz``), on ``backend``, ready to :meth:`~Generator.sample`."""
    path = os.fspath(path)
    return Generator(load_checkpoint(resolve_checkpoint_path(path)), backend)
