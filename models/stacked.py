"""What every built-in recurrent model shares, the vanilla RNN included: a stack of layers of one
cell, dropout on each layer's output on its way up, an output layer, and the loops over layers
of the forward and backward passes.

A subclass says how a layer's input is projected (and how that projection's gradients flow
back), what its cell computes over a whole sequence (one operation each way, see
:mod:`charrnn.kernels`), and what its output layer is. Arrays are ``(T, B, ·)``; ``Z`` is a
layer's input projection of every step, ``H`` its states ``(T+1, B, m)`` with the incoming state
in row 0. :class:`charrnn.models.gated.GatedRNN` is the base of the gated cells (LSTM, GRU, a
third party's); the vanilla RNN keeps the course's orientation and names in its own hooks.
"""
from __future__ import annotations

from typing import Any, ClassVar, List, Optional, Tuple

from charrnn.model import Model, State


class StackedRNN(Model):
    """Layers of one recurrent cell and an output layer; the hooks below say what they are."""

    #: Blocks of ``hidden`` columns in a layer's input projection (1 for the vanilla RNN).
    gates: ClassVar[int] = 1

    # -- what a subclass defines -------------------------------------------------------------

    def project_input(self, layer: int, source: Any, Z: Any) -> None:
        """Write layer ``layer``'s input projection of every step into ``Z`` (T, B, gates*m):
        ``source`` is the ids ``x`` (T, B) for layer 0, the (dropped) output of the layer below
        (T, B, m) otherwise."""
        raise NotImplementedError

    def project_input_backward(self, layer: int, source: Any, dZ: Any,
                               dH_below: Optional[Any]) -> None:
        """From ``dZ`` (T*B, gates*m), the gradient at the projection, write the gradients of
        the projection's weights and biases, and for a layer above the first the gradient
        reaching the layer below's output into ``dH_below`` (T*B, m)."""
        raise NotImplementedError

    def cell_forward(self, layer: int, Z: Any, state: State) -> Any:
        """Run layer ``layer``'s recurrence over ``Z`` (overwritten with whatever the backward
        pass needs), from its row of ``state``; return its ``H`` (T+1, B, m)."""
        raise NotImplementedError

    def cell_backward(self, layer: int, Z: Any, dH: Any, dZ: Any) -> None:
        """From ``dH`` (T, B, m), the gradient reaching each ``h_t`` from above, write ``dZ``
        (T, B, gates*m) and the gradient of the layer's recurrent weights."""
        raise NotImplementedError

    def cell_state_after(self, T: int, B: int) -> State:
        """The state after the last step of the forward pass just run."""
        raise NotImplementedError

    def output_loss(self, top: Any, y: Any, batch: int) -> Any:
        """The loss (on the device) of the top layer's outputs ``top`` (T*B, m) against the ids
        ``y`` (T*B,); what :meth:`output_backward` needs is kept."""
        raise NotImplementedError

    def output_backward(self, y: Any, batch: int, dH: Any) -> None:
        """The output layer's gradients, and the gradient reaching the top layer's outputs into
        ``dH`` (T*B, m)."""
        raise NotImplementedError

    def output_logits(self, top: Any) -> Any:
        """The logits (B, K) of the top layer's outputs ``top`` (B, m), for sampling."""
        raise NotImplementedError

    # -- the passes ----------------------------------------------------------------------------

    def _forward(self, x: Any, state: State, rng: Any) -> Any:
        """Every layer over all steps; returns the top layer's output, (T*B, m)."""
        T, B = x.shape
        m = self.hidden
        self._masks: List[Any] = []
        source: Any = x
        for layer in range(self.layers):
            Z = self.buffer(f"Z{layer}", (T, B, self.gates * m))
            self.project_input(layer, source, Z)
            H = self.cell_forward(layer, Z, state)
            source, mask = self.dropped(H[1:], rng, f"X{layer + 1}")  # on its way up
            self._masks.append(mask)
        return source.reshape(T * B, m)

    def loss(self, x: Any, y: Any, state: State) -> Tuple[float, State]:
        T, B = x.shape
        loss = self.output_loss(self._forward(x, state, None), y.reshape(-1), B)
        return self.backend.to_float(loss), self.cell_state_after(T, B)

    def loss_and_grads(self, x: Any, y: Any, state: State, rng: Any = None) -> Tuple[Any, State]:
        T, B = x.shape
        m, N, width = self.hidden, T * B, self.gates * self.hidden
        y = y.reshape(-1)
        loss = self.output_loss(self._forward(x, state, rng), y, B)
        new_state = self.cell_state_after(T, B)
        dH = self.buffer(f"dH{self.layers - 1}", (T, B, m))
        self.output_backward(y, B, dH.reshape(N, m))
        for layer in range(self.layers - 1, -1, -1):
            mask = self._masks[layer]
            if mask is not None:
                dH *= mask
            Z = self.buffer(f"Z{layer}", (T, B, width))
            dZ = self.buffer(f"dZ{layer}", (T, B, width))
            self.cell_backward(layer, Z, dH, dZ)
            below = None if layer == 0 else self.buffer(f"dH{layer - 1}", (T, B, m))
            source = x if layer == 0 else self._layer_input(layer, T, B)
            self.project_input_backward(layer, source, dZ.reshape(N, width),
                                        None if below is None else below.reshape(N, m))
            dH = below
        return loss, new_state

    def _layer_input(self, layer: int, T: int, B: int) -> Any:
        """What layer ``layer`` (> 0) read: the output of the layer below, after dropout."""
        if self._masks[layer - 1] is None:
            return self.buffer(f"H{layer - 1}", (T + 1, B, self.hidden))[1:]
        return self.buffer(f"X{layer}", (T, B, self.hidden))

    # -- generation --------------------------------------------------------------------------

    def step(self, state: State, ids: Any) -> Tuple[State, Any]:
        """One character per stream: each layer's projection and cell are the ones training
        runs, at ``T = 1``, so sampling computes what the loss computes."""
        B = ids.shape[0]
        source: Any = ids[None]
        for layer in range(self.layers):
            Z = self.buffer(f"Z{layer}", (1, B, self.gates * self.hidden))
            self.project_input(layer, source, Z)
            source = self.cell_forward(layer, Z, state)[1:]
        return self.cell_state_after(1, B), self.output_logits(source[0])
