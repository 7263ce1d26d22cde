"""The model interface: what the trainer, checkpoints, gradient check, sampler and report see.

A model is a plugin (``register_models``). It owns its parameters as named views into one flat
array and its gradients as views into another (:class:`charrnn.params.FlatParams`), so that
clipping and the optimizer update stay one operation each over the whole model. It reads
sequences of character ids shaped ``(T, B)``: ``T`` steps of ``B`` parallel streams.

Its recurrent state is opaque to everyone else: a tuple of arrays, each with the batch on axis 1
(``(layers, B, m)`` for the built-in models: ``(h,)`` for rnn and gru, ``(h, c)`` for lstm; an
empty tuple for a model with no state). That one rule lets the trainer reset it, checkpoints save
it, and the sampler take one stream's row of it without knowing what it holds.

The loss is the cross-entropy summed over the ``T`` steps of a sequence and averaged over the
``B`` streams, so that it reads the same at every batch size (the course's smooth loss starts at
``T ln K``); gradients are those of that loss.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy

from .backend import Array, Backend
from .errors import CharrnnError
from .params import FlatParams, GradientSupport, Layout, layout_size

State = Tuple[Array, ...]

__all__ = ["Model", "State", "GradientSupport", "layer_names"]


def layer_names(names: Sequence[str], layers: int) -> List[Tuple[str, ...]]:
    """Per-layer parameter names: as given for one layer, numbered from 1 for a stack.

    ``layer_names(("Wx", "Wh", "b"), 2) == [("Wx1", "Wh1", "b1"), ("Wx2", "Wh2", "b2")]``; with
    one layer the names stay as given, so a one-layer model's checkpoints and gradient-check
    tables use the plain names its equations use.
    """
    if layers == 1:
        return [tuple(names)]
    return [tuple(f"{n}{layer}" for n in names) for layer in range(1, layers + 1)]


def shape_options(options: Dict[str, Any]) -> Dict[str, Any]:
    """The options besides ``hidden`` and ``layers`` that a model's ``param_shapes`` takes, from
    a model's :meth:`Model.options` (or a checkpoint's): ``embedding`` when it is set. Left out
    when it is not, so that a model written before the option keeps its signature."""
    embedding = int(options.get("embedding") or 0)
    return {"embedding": embedding} if embedding else {}


class Model:
    """Base class for models; subclasses set :attr:`name` and the methods marked below.

    Options every model is built with (a model may ignore those it has no use for, or refuse a
    value with :class:`charrnn.errors.CharrnnError`): ``hidden`` (state size per layer),
    ``layers``, ``dropout`` (probability of dropping a unit between layers, during training
    only), ``sigma`` (standard deviation of the initial weights; None for the model's
    :attr:`default_sigma`) and ``seed``. ``params`` (host arrays by name) replaces the
    initialisation, as when a checkpoint is loaded.
    """

    name: ClassVar[str] = "base"
    #: Standard deviation of the initial weights when ``--sigma`` is not given.
    default_sigma: ClassVar[float] = 0.01
    #: Scale of the random point a gradient check draws every parameter at: large enough that
    #: the units leave their linear range (a missing derivative factor then shows) and the
    #: gradients stand well above the finite differences' rounding.
    check_sigma: ClassVar[float] = 0.1
    #: Whether the model can read characters through a learned embedding (``--embedding N``):
    #: its ``param_shapes`` then takes ``embedding=N``. A model without it is refused the option.
    embeds: ClassVar[bool] = False

    def __init__(self, backend: Backend, vocab_size: int, *, hidden: int = 100, layers: int = 1,
                 dropout: float = 0.0, sigma: Optional[float] = None, seed: int = 0,
                 params: Optional[Dict[str, Any]] = None, embedding: int = 0) -> None:
        if int(layers) < 1:
            raise CharrnnError(f"--layers {layers} is not a number of layers; pass 1 or more")
        if not 0.0 <= float(dropout) < 1.0:
            raise CharrnnError(f"--dropout {dropout} is outside [0, 1); pass a probability such "
                               "as 0.2, or 0 for none")
        if int(embedding) < 0:
            raise CharrnnError(f"--embedding {embedding} is not a size; pass a number of "
                               "dimensions such as 64, or 0 for one-hot characters")
        if int(embedding) and not self.embeds:
            raise CharrnnError(f"--embedding is for models that embed characters (lstm, gru); "
                               f"the {self.name} model reads them one-hot: drop --embedding")
        self.embedding = int(embedding)
        self.backend = backend
        self.K = int(vocab_size)
        self.hidden = int(hidden)
        self.layers = int(layers)
        self.dropout = float(dropout)
        self.sigma = self.default_sigma if sigma is None else float(sigma)
        #: Parameter shapes by name, in the order tables and checkpoints list them.
        self.shapes: Dict[str, Tuple[int, ...]] = self.param_shapes(
            self.K, hidden=self.hidden, layers=self.layers, **shape_options(self.options()))
        layout = self.layout()
        self.size = layout_size(layout)
        if self.size != sum(math.prod(s) for s in self.shapes.values()):
            raise ValueError(f"{type(self).__name__}.layout() does not store every parameter once")
        self.params = FlatParams(backend.zeros(self.size), layout)
        self.grads = FlatParams(backend.zeros(self.size), layout)
        self.add_aliases(self.params)
        self.add_aliases(self.grads)
        #: Where the last gradient can be non-zero (see :class:`GradientSupport`), or None.
        self.support: Optional[GradientSupport] = None
        self._buffers: Dict[Tuple[str, Tuple[int, ...]], Array] = {}
        self.set_params(self.init_params(seed) if params is None else params)

    # -- what a model defines ----------------------------------------------------------------

    @classmethod
    def param_shapes(cls, vocab_size: int, *, hidden: int, layers: int) -> Dict[str, Tuple[int, ...]]:
        """Parameter shapes by name, for a vocabulary of ``vocab_size`` characters."""
        raise NotImplementedError

    def char_axes(self) -> Dict[str, int]:
        """For each parameter indexed by the input character's id, the axis the id indexes.

        The gradient check samples most of its entries where the sequence's characters are,
        since elsewhere the gradient of such a parameter is exactly zero.
        """
        return {}

    def layout(self) -> Layout:
        """How the parameters are stored in the flat array: ``[(name, shape), ...]``.

        By default :attr:`shapes` in order. A model may store a parameter under another name
        and shape (transposed, say) and give users its own name through :meth:`add_aliases`;
        its character-indexed table goes last, so :class:`GradientSupport` can describe it.
        """
        return list(self.shapes.items())

    def missing_param(self, name: str) -> Optional[Any]:
        """What parameter ``name`` holds when a checkpoint lacks it (one written before the
        model gained it), or None when it must be there. Also fills the optimizer's state."""
        return None

    def add_aliases(self, views: FlatParams) -> None:
        """Name views of stored arrays that :meth:`layout` stores under another name."""

    def init_params(self, seed: int) -> Dict[str, numpy.ndarray]:
        """Host-side initialisation, so every backend starts from the same numbers.

        By default: matrices ``randn * sigma`` in :attr:`shapes` order from one generator
        seeded with ``seed``, vectors (biases) zero.
        """
        rng = numpy.random.default_rng(seed)
        return {name: (rng.standard_normal(shape) * self.sigma if len(shape) > 1
                       else numpy.zeros(shape)) for name, shape in self.shapes.items()}

    def zero_state(self, batch: int) -> State:
        """The state a stream starts from (and is reset to at each epoch)."""
        raise NotImplementedError

    def loss_and_grads(self, x: Array, y: Array, state: State,
                       rng: Optional[numpy.random.Generator] = None) -> Tuple[Any, State]:
        """Forward and backward over one batch of sequences.

        ``x`` and ``y`` are integer ids shaped (T, B) on the device; ``state`` is not modified.
        Fills :attr:`grads` (unclipped) and :attr:`support`; returns the loss (summed over
        steps, averaged over the batch) as a device scalar, and the state after the last step.
        ``rng`` is given while training: a model with dropout draws its masks from it; without
        it (gradient checks, evaluation) dropout is off.
        """
        raise NotImplementedError

    def loss(self, x: Array, y: Array, state: State) -> Tuple[float, State]:
        """The loss alone, as a host float, and the state after the last step; no dropout."""
        raise NotImplementedError

    def step(self, state: State, ids: Array) -> Tuple[State, Array]:
        """One step of generation: ``ids`` (B,) in, the next state and logits (B, K) out."""
        raise NotImplementedError

    def options(self) -> Dict[str, Any]:
        """What, besides the vocabulary, fixes this model's shape: saved in checkpoints."""
        options = {"hidden": self.hidden, "layers": self.layers}
        if self.embedding:
            options["embedding"] = self.embedding
        return options

    def describe(self) -> str:
        """One line for logs and reports."""
        layers = f"{self.layers} layers of {self.hidden}" if self.layers > 1 else \
            f"hidden {self.hidden}"
        drop = f", dropout {self.dropout:g}" if self.dropout else ""
        embed = f", embedding {self.embedding}" if self.embedding else ""
        return f"{self.name} ({layers}{embed}{drop}; {self.size:,} parameters)"

    # -- parameters on the host --------------------------------------------------------------

    def set_params(self, params: Dict[str, Any]) -> None:
        """Every parameter from host arrays by name (checked), in one copy to the device."""
        flat = self.join_flat(params)
        self.params.flat[...] = self.backend.asarray(flat, dtype=self.backend.dtype)

    def get_params(self) -> Dict[str, numpy.ndarray]:
        return {name: self.backend.to_numpy(self.params[name]).copy() for name in self.shapes}

    def get_grads(self) -> Dict[str, numpy.ndarray]:
        return {name: self.backend.to_numpy(self.grads[name]).copy() for name in self.shapes}

    def split_flat(self, flat: Any) -> Dict[str, numpy.ndarray]:
        """A flat host array laid out like the parameters (an optimizer's state, say), by name.

        Checkpoints store optimizer state this way, so that they do not depend on how a version
        of the model lays its parameters out.
        """
        views = FlatParams(numpy.asarray(flat), self.layout())
        self.add_aliases(views)
        return {name: numpy.array(views[name]) for name in self.shapes}

    def join_flat(self, parts: Dict[str, Any]) -> numpy.ndarray:
        """The inverse of :meth:`split_flat`: a flat host array from arrays by name."""
        flat = numpy.zeros(self.size)
        views = FlatParams(flat, self.layout())
        self.add_aliases(views)
        for name, shape in self.shapes.items():
            if name not in parts and self.missing_param(name) is not None:
                parts = {**parts, name: self.missing_param(name)}
            if name not in parts:
                raise ValueError(f"parameter {name} is missing")
            value = numpy.asarray(parts[name])
            if value.shape != shape:
                raise ValueError(f"parameter {name} has shape {value.shape}, expected {shape}")
            views[name][...] = value
        return flat

    # -- state -------------------------------------------------------------------------------

    def state_to_host(self, state: State) -> List[numpy.ndarray]:
        return [self.backend.to_numpy(s).copy() for s in state]

    def state_from_host(self, arrays: Sequence[Any], batch: int) -> State:
        """A state from host arrays (a checkpoint's), checked against :meth:`zero_state`."""
        expected = self.zero_state(batch)
        if len(arrays) != len(expected):
            raise ValueError(f"the state has {len(arrays)} arrays, expected {len(expected)}")
        out = []
        for i, (a, z) in enumerate(zip(arrays, expected)):
            a = numpy.asarray(a)
            if a.shape != tuple(z.shape):
                raise ValueError(f"state array {i} has shape {a.shape}, expected {tuple(z.shape)}")
            out.append(self.backend.asarray(a, dtype=self.backend.dtype))
        return tuple(out)

    @staticmethod
    def select_state(state: State, index: int) -> State:
        """The state of stream ``index`` alone, as a batch of one (copies)."""
        return tuple(s[:, index : index + 1].copy() for s in state)

    # -- helpers for subclasses --------------------------------------------------------------

    def buffer(self, name: str, shape: Tuple[int, ...]) -> Array:
        """Scratch array ``name`` of ``shape``, allocated once and reused every update.

        Its contents are whatever the last update left; callers write before they read. (For
        the vanilla RNN's dozen arrays: 13 µs against 29 µs per update for fresh ones.)
        """
        key = (name, tuple(shape))
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = self.backend.zeros(shape)
        return buf

    def dropout_mask(self, rng: Optional[numpy.random.Generator], shape: Tuple[int, ...]):
        """A dropout mask for a training pass, or None when dropout is off."""
        if rng is None or not self.dropout:
            return None
        return self.backend.dropout_mask(rng, shape, self.dropout)

    def dropped(self, outputs: Array, rng: Optional[numpy.random.Generator],
                name: str) -> Tuple[Array, Any]:
        """``outputs`` with a dropout mask applied (into buffer ``name``), and the mask; or
        ``outputs`` itself and None when dropout is off."""
        mask = self.dropout_mask(rng, tuple(outputs.shape))
        if mask is None:
            return outputs, None
        out = self.buffer(name, tuple(outputs.shape))
        self.backend.xp.multiply(outputs, mask, out=out)
        return out, mask

    def support_from_rows(self, rows: Optional[Array], table: str) -> Optional[GradientSupport]:
        """The :class:`GradientSupport` of a gradient whose only sparse part is the last stored
        array, ``table``, of which only ``rows`` were touched (None: unknown)."""
        if rows is None:
            return None
        view = self.grads[table]
        return GradientSupport(self.size - view.size, view.shape[1], rows)

    def softmax_loss(self, O: Array, y: Array, batch: int) -> Any:
        """Cross-entropy of logits ``O`` (N, K) against ids ``y`` (N,), summed and divided by
        ``batch``. ``O`` is overwritten with the probabilities."""
        be, xp = self.backend, self.backend.xp
        P = be.softmax(O)
        loss = -xp.log(P[self._rows(O.shape[0]), y]).sum()
        return loss if batch == 1 else loss / batch

    def softmax_grad_(self, P: Array, y: Array, batch: int) -> Array:
        """Turn the probabilities left by :meth:`softmax_loss` into the gradient at the logits."""
        P[self._rows(P.shape[0]), y] -= 1.0
        if batch != 1:
            P *= 1.0 / batch
        return P

    def _rows(self, n: int) -> Array:
        key = ("rows", (n,))
        rows = self._buffers.get(key)
        if rows is None:
            rows = self._buffers[key] = self.backend.xp.arange(n)
        return rows
