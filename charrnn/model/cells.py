"""Recurrent cells: all that charrnn knows about one kind of cell lives in its class.

A cell says how to build its fused torch module (nn.LSTM, nn.GRU, nn.RNN: oneDNN on a CPU, cuDNN
on a GPU), how to initialise it, what its state is made of, how many parameters it has, and how
to take one sampling step on weights rearranged for that purpose (see CharRNN.step). The registry
CELLS is what the config's choices, sizing, the model, inspection and the tests read.

Adding a cell is one class here, decorated with @register. Torch is imported inside the methods:
the config and the CLI's --help read the registry, and must not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, TypeAlias

if TYPE_CHECKING:
    import torch

# The recurrent state: (h, c) for an LSTM, h alone for GRU and RNN; each (layers, batch, hidden). Which one is the
# cell's business (pack/unpack). Named in a string, so that reading the registry does not import torch.
State: TypeAlias = "torch.Tensor | tuple[torch.Tensor, ...]"

CELLS: dict[str, Cell] = {}


def register(cls: type[Cell]) -> type[Cell]:
    CELLS[cls.name] = cls()
    return cls


def get_cell(name: str) -> Cell:
    """The registered cell called `name`; ValueError naming the known ones otherwise."""
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {name!r}") from None


class Cell:
    """One kind of recurrent cell. Shapes: a state part is (layers, batch, hidden); `lw` is one layer's
    weights from layer_weights(); in step(), x is ids (batch,) for the first layer, else (batch, hidden).
    """

    name: ClassVar[str]
    module: ClassVar[str]  # the torch.nn class
    gates: ClassVar[int]  # weight rows per hidden unit: the fused kernels' gate count
    state_parts: ClassVar[int] = 1  # tensors in the state: h, or (h, c)

    def build(self, embed: int, hidden: int, layers: int, dropout: float) -> torch.nn.Module:
        from torch import nn

        return getattr(nn, self.module)(embed, hidden, num_layers=layers, batch_first=True,
                                        dropout=dropout if layers > 1 else 0.0)

    def initialise(self, rnn: torch.nn.Module, hidden: int) -> None:
        """Adjust torch's default initialisation (nothing by default)."""

    def num_params(self, embed: int, hidden: int, layers: int) -> int:
        """Parameters of the recurrent stack: per layer gates x hidden x (input + hidden + two biases)."""
        return sum(self.gates * hidden * ((embed if i == 0 else hidden) + hidden + 2) for i in range(layers))

    def zero_state(self, layers: int, batch: int, hidden: int, device) -> State:
        import torch

        z = torch.zeros(layers, batch, hidden, device=device)
        return self.pack([z] + [z.clone() for _ in range(self.state_parts - 1)])

    def pack(self, parts: list[torch.Tensor]) -> State:
        """State parts -> the state the torch module takes (a tensor, or a tuple for several parts)."""
        return tuple(parts) if self.state_parts > 1 else parts[0]

    def unpack(self, state: State) -> list[torch.Tensor]:
        """The inverse of pack(); the first part is always the hidden output h."""
        return list(state) if self.state_parts > 1 else [state]

    def gate_order(self, hidden: int, device) -> torch.Tensor:
        """Rows of the fused weight matrices in the order step() reads them (default: as stored)."""
        import torch

        return torch.arange(self.gates * hidden, device=device)

    def layer_weights(self, w_ih, w_hh, b_ih, b_hh, embed: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """One layer's weights for step() (rows already in gate_order); `embed` is given for the first layer,
        whose input projection of every character becomes a (vocab, gates) table looked up by id.

        Default: input and hidden products summed into one, as in the LSTM and the tanh RNN.
        """
        import torch

        if embed is not None:
            return {"table": torch.addmm(b_ih + b_hh, embed, w_ih.t()), "w_hh": w_hh.t().contiguous()}
        return {"w_cat": torch.cat([w_ih, w_hh], 1).t().contiguous(), "b": b_ih + b_hh}

    def pre_activation(self, lw: dict, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """All gates' summed input and hidden products (batch, gates x hidden), for the default layer_weights."""
        import torch

        if "table" in lw:  # first layer: a row lookup instead of a product
            return torch.addmm(lw["table"][x], h, lw["w_hh"])
        return torch.addmm(lw["b"], torch.cat([x, h], 1), lw["w_cat"])

    def step(self, lw: dict, x: torch.Tensor, parts: list[torch.Tensor]) -> list[torch.Tensor]:
        """One time step of one layer: this layer's state parts (each (batch, hidden)) -> the new ones."""
        raise NotImplementedError


@register
class LSTM(Cell):
    name, module, gates, state_parts = "lstm", "LSTM", 4, 2

    def initialise(self, rnn, hidden: int) -> None:
        import torch

        # Forget-gate bias of 1 lets memory persist from the start (Jozefowicz et al., 2015).
        for name, p in rnn.named_parameters():
            if name.startswith("bias_ih"):
                with torch.no_grad():
                    p[hidden : 2 * hidden].fill_(1.0)

    def gate_order(self, hidden: int, device):
        import torch

        # torch stores i, f, g, o; step() wants i, f, o, g so that one sigmoid covers three gates.
        order = torch.arange(4 * hidden, device=device)
        return torch.cat([order[: 2 * hidden], order[3 * hidden :], order[2 * hidden : 3 * hidden]])

    def step(self, lw, x, parts):
        import torch

        h, c = parts
        hid = h.shape[1]
        g = self.pre_activation(lw, x, h)
        ifo = torch.sigmoid(g[:, : 3 * hid])
        c = torch.addcmul(ifo[:, hid : 2 * hid] * c, ifo[:, :hid], torch.tanh(g[:, 3 * hid :]))
        return [ifo[:, 2 * hid :] * torch.tanh(c), c]


@register
class GRU(Cell):
    name, module, gates = "gru", "GRU", 3

    def layer_weights(self, w_ih, w_hh, b_ih, b_hh, embed):
        import torch

        # The candidate gate needs the hidden product apart: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
        lw = {"w_hh": w_hh.t().contiguous(), "b_hh": b_hh.clone()}
        if embed is not None:
            lw["table"] = torch.addmm(b_ih, embed, w_ih.t())
        else:
            lw.update(w_ih=w_ih.t().contiguous(), b_ih=b_ih.clone())
        return lw

    def step(self, lw, x, parts):
        import torch

        (h,) = parts
        hid = h.shape[1]
        gi = lw["table"][x] if "table" in lw else torch.addmm(lw["b_ih"], x, lw["w_ih"])
        gh = torch.addmm(lw["b_hh"], h, lw["w_hh"])
        rz = torch.sigmoid(gi[:, : 2 * hid] + gh[:, : 2 * hid])
        r, z = rz[:, :hid], rz[:, hid:]
        return [torch.lerp(torch.tanh(gi[:, 2 * hid :] + r * gh[:, 2 * hid :]), h, z)]  # (1 - z) n + z h


@register
class RNN(Cell):
    """Elman RNN with tanh."""

    name, module, gates = "rnn", "RNN", 1

    def step(self, lw, x, parts):
        import torch

        return [torch.tanh(self.pre_activation(lw, x, parts[0]))]
