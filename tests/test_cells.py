"""Every registered cell, through every place that reads the registry: the model, its one-step sampling
path, sizing's parameter count, the config's choices. A new cell class is tested here without a line added."""

import pytest
import torch

from charrnn.model.cells import CELLS, Cell, get_cell
from charrnn.model.config import ModelConfig
from charrnn.model.network import CharRNN, detach_state, select_state
from charrnn.training import sizing

ALL = sorted(CELLS)


def test_the_registry_holds_the_three_cells():
    assert {"gru", "lstm", "rnn"} <= set(ALL)
    assert [CELLS[n].state_parts for n in ("lstm", "gru", "rnn")] == [2, 1, 1]


@pytest.mark.parametrize("cell", ALL)
def test_shapes_and_state(cell):
    torch.manual_seed(0)
    m = CharRNN(ModelConfig(vocab_size=30, cell=cell, layers=2, hidden=24, embed=8))
    x = torch.randint(0, 30, (5, 7))
    logits, state = m(x)
    assert logits.shape == (5, 7, 30)
    parts = m.cell.unpack(state)
    assert len(parts) == CELLS[cell].state_parts
    assert all(p.shape == (2, 5, 24) for p in parts)
    zero = m.cell.unpack(m.init_state(5))
    assert [p.shape for p in zero] == [p.shape for p in parts] and all(not p.any() for p in zero)
    # Carrying the state over two halves equals one pass over the whole (eval mode, no dropout).
    m.eval()
    full, _ = m(x)
    a, s = m(x[:, :3])
    b, _ = m(x[:, 3:], detach_state(s))
    torch.testing.assert_close(torch.cat([a, b], 1), full)
    sub = m.cell.unpack(select_state(state, torch.tensor([0, 3])))
    assert all(p.shape == (2, 2, 24) for p in sub)


@pytest.mark.parametrize("cell", ALL)
@pytest.mark.parametrize("batch", [4, 20])
def test_single_step_matches_forward(cell, batch):
    torch.manual_seed(1)
    m = CharRNN(ModelConfig(vocab_size=30, cell=cell, layers=2, hidden=24, embed=8, dropout=0.3)).eval()
    x = torch.randint(0, 30, (batch, 9))

    def check():
        expected, expected_state = m(x)
        state = m.init_state(batch)
        for t in range(9):
            logits, state = m.step(x[:, t], state)
            torch.testing.assert_close(logits, expected[:, t], rtol=1e-4, atol=1e-5)
        for a, b in zip(m.cell.unpack(state), m.cell.unpack(expected_state), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)

    check()
    # step() caches rearranged weights; changing the weights (an optimizer step, a load) must not leave them stale.
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    check()


@pytest.mark.parametrize("cell", ALL)
@pytest.mark.parametrize("layers", [1, 3])
def test_parameter_count_without_building(cell, layers):
    cfg = ModelConfig(vocab_size=71, cell=cell, layers=layers, hidden=40, embed=12)
    assert sizing.count_params(cfg) == CharRNN(cfg).num_params()


def test_lstm_starts_with_forget_gate_bias_one():
    m = CharRNN(ModelConfig(vocab_size=10, cell="lstm", layers=2, hidden=8, embed=4))
    for layer in range(2):
        bias = getattr(m.rnn, f"bias_ih_l{layer}")
        assert torch.all(bias[8:16] == 1.0) and not torch.all(bias[:8] == 1.0)


def test_unknown_cell_is_refused_everywhere():
    with pytest.raises(ValueError, match=r"cell must be one of lstm, gru, rnn(, \w+)*, not 'transformer'"):
        ModelConfig(vocab_size=5, cell="transformer")
    with pytest.raises(ValueError, match="transformer"):
        get_cell("transformer")


def test_a_cell_without_a_sampling_step_fails_loudly():
    class Half(Cell):  # not registered: a class that forgot step() must not sample with another cell's arithmetic
        name, module, gates = "half", "RNN", 1

    with pytest.raises(NotImplementedError):
        Half().step({}, torch.zeros(1, dtype=torch.long), [torch.zeros(1, 4)])
