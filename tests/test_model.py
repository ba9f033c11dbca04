import math

import pytest
import torch
import torch.nn.functional as F

from charrnn.model import CharRNN, ModelConfig, detach_state, select_state


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_shapes_and_state(cell):
    torch.manual_seed(0)
    m = CharRNN(ModelConfig(vocab_size=30, cell=cell, layers=2, hidden=24, embed=8))
    x = torch.randint(0, 30, (5, 7))
    logits, state = m(x)
    assert logits.shape == (5, 7, 30)
    parts = state if isinstance(state, tuple) else (state,)
    assert len(parts) == (2 if cell == "lstm" else 1)
    assert all(p.shape == (2, 5, 24) for p in parts)
    # Carrying the state over two halves equals one pass over the whole (eval mode, no dropout).
    m.eval()
    full, _ = m(x)
    a, s = m(x[:, :3])
    b, _ = m(x[:, 3:], detach_state(s))
    torch.testing.assert_close(torch.cat([a, b], 1), full)
    sub = select_state(state, torch.tensor([0, 3]))
    assert all(p.shape == (2, 2, 24) for p in (sub if isinstance(sub, tuple) else (sub,)))


@pytest.mark.parametrize("vocab_size", [10, 66, 300])
def test_initial_loss_is_about_ln_vocab(vocab_size):
    torch.manual_seed(0)
    m = CharRNN(ModelConfig(vocab_size=vocab_size, layers=2, hidden=128, embed=32))
    x = torch.randint(0, vocab_size, (16, 64))
    y = torch.randint(0, vocab_size, (16, 64))
    logits, _ = m(x)
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten()).item()
    assert abs(loss - math.log(vocab_size)) < 0.05 * math.log(vocab_size)


def test_unknown_cell_is_refused():
    with pytest.raises(ValueError, match="cell"):
        ModelConfig(vocab_size=5, cell="transformer")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
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
        pairs = zip(state if cell == "lstm" else (state,), expected_state if cell == "lstm" else (expected_state,), strict=True)
        for a, b in pairs:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)

    check()
    # step() caches rearranged weights; changing the weights (an optimizer step, a load) must not leave them stale.
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    check()


def test_dropout_drops_the_given_share_keeps_the_mean_and_is_off_in_eval():
    torch.manual_seed(0)
    m = CharRNN(ModelConfig(vocab_size=10, hidden=16, embed=8, dropout=0.25))
    x = torch.ones(40, 50, 100)
    dropped = m._drop(x)
    assert dropped.unique().tolist() == pytest.approx([0.0, 4 / 3])
    assert (dropped == 0).float().mean().item() == pytest.approx(0.25, abs=0.01)
    assert dropped.mean().item() == pytest.approx(1.0, abs=0.02)
    # Independent per element: neighbours in time and in features are uncorrelated.
    kept = (dropped > 0).float()
    corr = torch.corrcoef(torch.stack([kept[:, 1:].flatten(), kept[:, :-1].flatten()]))[0, 1]
    assert abs(corr.item()) < 0.02
    assert torch.equal(m.eval()._drop(x), x)
