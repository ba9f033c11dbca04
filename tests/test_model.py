import math

import pytest
import torch
import torch.nn.functional as F

from charrnn.model.network import CharRNN, ModelConfig


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
    dropped = m._drop(x, 0.25)
    assert dropped.unique().tolist() == pytest.approx([0.0, 4 / 3])
    assert (dropped == 0).float().mean().item() == pytest.approx(0.25, abs=0.01)
    assert dropped.mean().item() == pytest.approx(1.0, abs=0.02)
    # Independent per element: neighbours in time and in features are uncorrelated.
    kept = (dropped > 0).float()
    corr = torch.corrcoef(torch.stack([kept[:, 1:].flatten(), kept[:, :-1].flatten()]))[0, 1]
    assert abs(corr.item()) < 0.02
    assert torch.equal(m.eval()._drop(x, 0.25), x)


def test_weight_drop_masks_the_recurrent_matrices_per_window_in_training_only():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=10, layers=2, hidden=16, embed=8, dropout=0.0, weight_drop=0.5)
    m, plain = CharRNN(cfg), CharRNN(ModelConfig(**{**cfg.to_dict(), "weight_drop": 0.0}))
    plain.load_state_dict(m.state_dict())
    x = torch.randint(0, 10, (4, 12))
    # In eval both are the same model; in training each window draws its own masks.
    assert torch.equal(m.eval()(x)[0], plain.eval()(x)[0])
    m.train()
    a, b = m(x)[0], m(x)[0]
    assert not torch.allclose(a, b) and not torch.allclose(a, plain(x)[0])
    # The masks fall on the hidden-to-hidden matrices: their gradients have the masked entries' zeros,
    # and every other parameter is trained as usual.
    a.sum().backward()
    for name, p in m.rnn.named_parameters():
        zeros = (p.grad == 0).float().mean().item()
        assert zeros == pytest.approx(0.5, abs=0.1) if name.startswith("weight_hh") else zeros < 0.1, name
    assert all(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize("field", ["dropout", "weight_drop"])
@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_a_drop_share_outside_0_to_1_is_refused(field, value):
    from charrnn.errors import UsageError

    with pytest.raises(UsageError, match=f"--{field.replace('_', '-')} must be in \\[0, 1\\)"):
        ModelConfig(vocab_size=10, **{field: value})
