import math

import pytest
import torch
import torch.nn.functional as F

from charrnn.model import CharRNN, ModelConfig


@pytest.mark.parametrize("vocab_size", [10, 66, 300])
def test_initial_loss_is_about_ln_vocab(vocab_size):
    torch.manual_seed(0)
    m = CharRNN(ModelConfig(vocab_size=vocab_size, layers=2, hidden=128, embed=32))
    x = torch.randint(0, vocab_size, (16, 64))
    y = torch.randint(0, vocab_size, (16, 64))
    logits, _ = m(x)
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten()).item()
    assert abs(loss - math.log(vocab_size)) < 0.05 * math.log(vocab_size)


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
