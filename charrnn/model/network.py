"""The character-level recurrent language model: embedding -> recurrent stack (cells.py) -> output head (heads.py)."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from .cells import State, get_cell
from .config import ModelConfig
from .heads import head_class
from .runtime import plain_fp32

SMALL_STEP_BATCH = 8  # on a GPU, more streams than this take the fused kernel in step()


class CharRNN(nn.Module):
    """A stateful char-level language model.

    forward(x, state) takes ids x (batch, time) int64 and an optional state; it returns scores
    (batch, time, vocab_size) for the next character at every position, whose softmax is the model's
    distribution (the head's contract: logits, or log-probabilities with adaptive softmax), and the
    state after the last position, so a caller can carry it into the next window (truncated BPTT) or
    the next sampling step. forward(x, state, targets) with targets (batch, time) returns each target's
    negative log-likelihood in nats (batch, time) float32 instead (0 where a target is heads.IGNORE),
    computed the head's cheapest exact way: training, eval and score take this path.
    """

    def __init__(self, config: ModelConfig, counts: np.ndarray | None = None):
        """counts (V,): each id's count in the training text, for a new adaptive head's ranks (heads.py)."""
        super().__init__()
        self.config = config
        c = config
        self.cell = get_cell(c.cell)
        self.embed = nn.Embedding(c.vocab_size, c.embed)
        self.rnn = self.cell.build(c.embed, c.hidden, c.layers, c.dropout)
        # The default head init (uniform, +-1/sqrt(hidden), zero bias) with small initial activations already
        # gives near-uniform first predictions (loss ~ ln V); shrinking it further starves the
        # recurrent layers of gradient and stalls early learning at the unigram plateau.
        self.head = head_class(c.softmax)(c.hidden, c.vocab_size, c.cutoffs, counts)
        self._step_cache: tuple | None = None  # see _step_weights
        self.cell.initialise(self.rnn, c.hidden)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device

    def init_state(self, batch: int, device: torch.device | str | None = None) -> State:
        """Zero state for `batch` streams."""
        return self.cell.zero_state(self.config.layers, batch, self.config.hidden, device or self.device)

    def forward(self, x: torch.Tensor, state: State | None = None,
                targets: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        p = self.config.dropout
        h, state = self._recurrent(self._drop(self.embed(x), p), state)
        h = self._drop(h, p)
        if targets is None:
            return self.head(h), state
        return self.head.nll(h.flatten(0, 1), targets.flatten()).view(targets.shape), state

    def _recurrent(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """The recurrent stack over a window, with weight drop (DropConnect) in training.

        One mask per window on each hidden-to-hidden matrix (Merity et al., 2017, "Regularizing and
        Optimizing LSTM Language Models") regularises the recurrence itself, which dropout on the
        inputs and outputs never touches, and the fused kernel still runs the whole window: the
        masked matrices are handed to the same module in place of its own.
        """
        p = self.config.weight_drop
        if not self.training or p == 0:
            return self.rnn(x, state)
        weights = {name: self._drop(w, p) if name.startswith("weight_hh") else w
                   for name, w in self.rnn.named_parameters()}
        with warnings.catch_warnings():
            # cuDNN would rather have its weights in one flat buffer; masked copies cannot be.
            warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
            return torch.func.functional_call(self.rnn, weights, (x, state))

    def _drop(self, x: torch.Tensor, p: float) -> torch.Tensor:
        """Dropout (training only), with the drop probability rounded to a multiple of 1/128.

        nn.Dropout draws each element's mask with its own Bernoulli sample, which on a CPU costs a
        fifth of a whole 1 x 512 training step (~17 ms of ~75 with the backward pass). Here one
        64-bit random word gives eight elements seven random bits each, and a comparison turns
        those into the mask, about four times cheaper; kept units are scaled by 1 / (1 - p) as usual.
        """
        if not self.training or p == 0:
            return x
        cut = max(1, min(127, round(p * 128)))  # drop when the 7 random bits are below cut
        n = x.numel()
        # random_() on int64 fills bits 0-62 (bit 63 stays 0), so every byte has 7 uniform low bits.
        bits = torch.empty((n + 7) // 8, dtype=torch.int64, device=x.device).random_().view(torch.uint8)[:n]
        mask = ((bits & 127) >= cut).view(x.shape).to(x.dtype).mul_(128 / (128 - cut))
        return x * mask

    @torch.no_grad()
    def step(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One time step in eval mode: ids (batch,) and a state -> scores (batch, vocab_size) and the new state.

        Computes what forward() does on a (batch, 1) input, with plain matrix products on weights
        rearranged once for the purpose (see _step_weights). The fused RNN kernel is built for long
        sequences: a one-step call costs far more to set up (about 0.4 ms on a CPU) than the step
        itself, and sampling makes one call per character.
        """
        if self.training or (ids.shape[0] > SMALL_STEP_BATCH and ids.device.type != "cpu"):
            with plain_fp32(ids.device):  # rounding as the per-layer path's: serve's batch size must not change text
                scores, state = self(ids[:, None], state)
            return scores[:, 0], state
        cell = self.cell
        parts = cell.unpack(state)
        x, layers = ids, []
        for layer, lw in enumerate(self._step_weights()):
            out = cell.step(lw, x, [p[layer] for p in parts])  # this layer's new parts; out[0] is h
            layers.append(out)
            x = out[0]
        return self.head(x), cell.pack([torch.stack(part) for part in zip(*layers, strict=True)])

    def _step_weights(self) -> list[dict[str, torch.Tensor]]:
        """Per layer, the weights step() uses (cells.Cell.layer_weights), rebuilt whenever a parameter
        has changed in place (optimizer steps, load_state_dict) or the module was moved or cast.

        Matrices are stored transposed and contiguous for addmm, gate rows in the cell's gate_order.
        """
        if self._step_cache is not None:
            params, versions, layers = self._step_cache
            if all(p._version == v for p, v in zip(params, versions, strict=True)):
                return layers
        order = self.cell.gate_order(self.config.hidden, self.device)
        layers = []
        with torch.no_grad():
            for layer in range(self.config.layers):
                w_ih, w_hh, b_ih, b_hh = (getattr(self.rnn, f"{k}_l{layer}")[order]
                                          for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                layers.append(self.cell.layer_weights(w_ih, w_hh, b_ih, b_hh, self.embed.weight if layer == 0 else None))
        params = list(self.parameters())
        self._step_cache = (params, [p._version for p in params], layers)
        return layers

    def _apply(self, fn, recurse=True):
        self._step_cache = None  # .to(), .half(), ... may move or replace the weights
        return super()._apply(fn, recurse)


def detach_state(state: State) -> State:
    """Cut the graph at a window boundary (truncated BPTT) while keeping the values."""
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def select_state(state: State, index: torch.Tensor) -> State:
    """The state of the streams at `index` (batch dimension 1)."""
    if isinstance(state, tuple):
        return tuple(s.index_select(1, index) for s in state)
    return state.index_select(1, index)


def cat_states(states: list[State]) -> State:
    """Several batches' states as one (batch dimension 1), in order."""
    if isinstance(states[0], tuple):
        return tuple(torch.cat(parts, 1) for parts in zip(*states, strict=True))
    return torch.cat(states, 1)


def grown_state(state: State | None) -> State | None:
    """The state after the streams doubled (batching.Windows): the old streams' state, then zeros for the new ones."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(grown_state(s) for s in state)
    return torch.cat([state, torch.zeros_like(state)], 1)
