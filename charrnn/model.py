"""The character-level recurrent language model: embedding -> LSTM/GRU/RNN stack -> logits."""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}  # keys match config.CELLS

SMALL_STEP_BATCH = 8  # up to this many streams, step() skips the fused kernel (see step)

# The recurrent state: (h, c) for an LSTM, h alone for GRU and RNN; each (layers, batch, hidden).
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class CharRNN(nn.Module):
    """A stateful char-level language model.

    forward(x, state) takes ids x (batch, time) int64 and an optional state; it returns logits
    (batch, time, vocab_size) for the next character at every position, and the state after the
    last position, so a caller can carry it into the next window (truncated BPTT) or the next
    sampling step.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(c.vocab_size, c.embed)
        self.rnn = CELLS[c.cell](
            c.embed, c.hidden, num_layers=c.layers, batch_first=True, dropout=c.dropout if c.layers > 1 else 0.0
        )
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden, c.vocab_size)
        self._init_weights()

    def _init_weights(self):
        # The default head init (uniform, +-1/sqrt(hidden)) with small initial activations already
        # gives near-uniform first predictions (loss ~ ln V); shrinking it further starves the
        # recurrent layers of gradient and stalls early learning at the unigram plateau.
        nn.init.zeros_(self.head.bias)
        if self.config.cell == "lstm":
            # Forget-gate bias of 1 lets memory persist from the start (Jozefowicz et al., 2015).
            for name, p in self.rnn.named_parameters():
                if name.startswith("bias_ih"):
                    h = self.config.hidden
                    with torch.no_grad():
                        p[h : 2 * h].fill_(1.0)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def init_state(self, batch: int, device: torch.device | str | None = None) -> State:
        """Zero state for `batch` streams."""
        c = self.config
        device = device or self.head.weight.device
        z = torch.zeros(c.layers, batch, c.hidden, device=device)
        return (z, z.clone()) if c.cell == "lstm" else z

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        h, state = self.rnn(self.drop(self.embed(x)), state)
        return self.head(self.drop(h)), state


    @torch.no_grad()
    def step(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One time step in eval mode: ids (batch,) and a state -> logits (batch, vocab_size) and the new state.

        Computes what forward() does on a (batch, 1) input. For a few streams it uses plain matrix
        products on the same weights: the fused RNN kernel costs far more to set up than one small
        step takes (about 0.4 ms a call on a CPU, and sampling makes a call per character). For
        larger batches the fused kernel is faster, so it is used (measured: 1 stream 2.5x faster
        this way, 64 streams 1.5x slower).
        """
        if self.training or ids.shape[0] > SMALL_STEP_BATCH:
            logits, state = self(ids[:, None], state)
            return logits[:, 0], state
        rnn, cell = self.rnn, self.config.cell
        x = self.embed(ids)
        h_all, c_all = state if cell == "lstm" else (state, None)
        new_h, new_c = [], []
        for layer in range(self.config.layers):
            w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
            b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
            h = h_all[layer]
            gi = torch.addmm(b_ih, x, w_ih.t())
            gh = torch.addmm(b_hh, h, w_hh.t())
            if cell == "lstm":
                i, f, g, o = (gi + gh).chunk(4, 1)
                c = torch.sigmoid(f) * c_all[layer] + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                new_c.append(c)
            elif cell == "gru":
                ir, iz, in_ = gi.chunk(3, 1)
                hr, hz, hn = gh.chunk(3, 1)
                r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
                h = (1 - z) * torch.tanh(in_ + r * hn) + z * h
            else:
                h = torch.tanh(gi + gh)
            new_h.append(h)
            x = h
        h_out = torch.stack(new_h)
        return self.head(x), ((h_out, torch.stack(new_c)) if cell == "lstm" else h_out)


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
