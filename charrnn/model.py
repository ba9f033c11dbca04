"""The character-level recurrent language model: embedding -> LSTM/GRU/RNN stack -> logits."""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}  # keys match config.CELLS

SMALL_STEP_BATCH = 8  # on a GPU, more streams than this take the fused kernel in step()

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
        self.head = nn.Linear(c.hidden, c.vocab_size)
        self._step_cache: tuple | None = None  # see _step_weights
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
        h, state = self.rnn(self._drop(self.embed(x)), state)
        return self.head(self._drop(h)), state

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout (training only), with the drop probability rounded to a multiple of 1/128.

        nn.Dropout draws each element's mask with its own Bernoulli sample, which on a CPU costs a
        fifth of a whole 1 x 512 training step (~17 ms of ~75 with the backward pass). Here one
        64-bit random word gives eight elements seven random bits each, and a comparison turns
        those into the mask, about four times cheaper; kept units are scaled by 1 / (1 - p) as usual.
        """
        p = self.config.dropout
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
        """One time step in eval mode: ids (batch,) and a state -> logits (batch, vocab_size) and the new state.

        Computes what forward() does on a (batch, 1) input, with plain matrix products on weights
        rearranged once for the purpose (see _step_weights). The fused RNN kernel is built for long
        sequences: a one-step call costs far more to set up (about 0.4 ms on a CPU) than the step
        itself, and sampling makes one call per character.
        """
        if self.training or (ids.shape[0] > SMALL_STEP_BATCH and ids.device.type != "cpu"):
            logits, state = self(ids[:, None], state)
            return logits[:, 0], state
        w = self._step_weights()
        cell, hid = self.config.cell, self.config.hidden
        h_all, c_all = state if cell == "lstm" else (state, None)
        new_h, new_c = [], []
        x = None
        for layer, lw in enumerate(w):
            h = h_all[layer]
            if cell == "gru":
                gi = lw["table"][ids] if layer == 0 else torch.addmm(lw["b_ih"], x, lw["w_ih"])
                gh = torch.addmm(lw["b_hh"], h, lw["w_hh"])
                rz = torch.sigmoid(gi[:, : 2 * hid] + gh[:, : 2 * hid])
                r, z = rz[:, :hid], rz[:, hid:]
                h = torch.lerp(torch.tanh(gi[:, 2 * hid :] + r * gh[:, 2 * hid :]), h, z)  # (1 - z) n + z h
            else:
                # Layer 0 looks its input projection up in a table; deeper layers do one product on [x, h].
                g = torch.addmm(lw["table"][ids], h, lw["w_hh"]) if layer == 0 else \
                    torch.addmm(lw["b"], torch.cat([x, h], 1), lw["w_cat"])
                if cell == "lstm":
                    ifo = torch.sigmoid(g[:, : 3 * hid])  # gates stored as i, f, o, g (see _step_weights)
                    c = torch.addcmul(ifo[:, hid : 2 * hid] * c_all[layer], ifo[:, :hid], torch.tanh(g[:, 3 * hid :]))
                    h = ifo[:, 2 * hid :] * torch.tanh(c)
                    new_c.append(c)
                else:
                    h = torch.tanh(g)
            new_h.append(h)
            x = h
        h_out = torch.stack(new_h)
        return self.head(x), ((h_out, torch.stack(new_c)) if cell == "lstm" else h_out)

    def _step_weights(self) -> list[dict[str, torch.Tensor]]:
        """Per layer, the weights step() uses, rebuilt whenever a parameter has changed in place
        (optimizer steps, load_state_dict) or the module was moved or cast.

        The first layer's input projection of every character, embedding @ W_ih.T + biases, is a
        (vocab, gates) table, so it costs a row lookup instead of a product. Matrices are stored
        transposed and contiguous for addmm; LSTM gate rows are reordered i, f, o, g so one sigmoid
        covers three gates.
        """
        if self._step_cache is not None:
            params, versions, layers = self._step_cache
            if all(p._version == v for p, v in zip(params, versions, strict=True)):
                return layers
        c, rnn = self.config, self.rnn
        hid = c.hidden
        order = torch.arange(4 * hid, device=self.head.weight.device)
        if c.cell == "lstm":
            order = torch.cat([order[: 2 * hid], order[3 * hid :], order[2 * hid : 3 * hid]])
        elif c.cell == "gru":
            order = order[: 3 * hid]
        else:
            order = order[:hid]
        layers = []
        with torch.no_grad():
            for layer in range(c.layers):
                w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}")[order], getattr(rnn, f"weight_hh_l{layer}")[order]
                b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}")[order], getattr(rnn, f"bias_hh_l{layer}")[order]
                if c.cell == "gru":  # the candidate gate needs the hidden product apart (r * (W_hn h + b_hn))
                    lw = {"w_hh": w_hh.t().contiguous(), "b_hh": b_hh.clone()}
                    if layer == 0:
                        lw["table"] = torch.addmm(b_ih, self.embed.weight, w_ih.t())
                    else:
                        lw.update(w_ih=w_ih.t().contiguous(), b_ih=b_ih.clone())
                elif layer == 0:
                    lw = {"table": torch.addmm(b_ih + b_hh, self.embed.weight, w_ih.t()), "w_hh": w_hh.t().contiguous()}
                else:
                    lw = {"w_cat": torch.cat([w_ih, w_hh], 1).t().contiguous(), "b": b_ih + b_hh}
                layers.append(lw)
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
