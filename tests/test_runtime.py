"""Threads, precision, compilation and the model a --time budget buys."""

import pytest
import torch
from conftest import TINY_MODEL, Notes, tiny_config

from charrnn import sizing
from charrnn.config import ModelConfig, Regularisation
from charrnn.errors import UsageError
from charrnn.runtime import autocast_dtype, available_cores, set_threads
from charrnn.train import train

CPU = torch.device("cpu")


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_are_set_and_default_to_the_cores_available(restore_threads):
    assert set_threads(1) == 1 and torch.get_num_threads() == 1
    assert set_threads(None) == available_cores() == torch.get_num_threads()
    with pytest.raises(UsageError, match="--threads must be at least 1"):
        set_threads(0)


def test_precision_choices():
    assert autocast_dtype("auto", CPU) is None  # fp32 on a CPU
    assert autocast_dtype("fp32", CPU) is None
    assert autocast_dtype("bf16", CPU) is torch.bfloat16
    with pytest.raises(UsageError, match="needs a CUDA GPU"):
        autocast_dtype("fp16", CPU)
    with pytest.raises(UsageError, match="not known"):
        autocast_dtype("half", CPU)


def fake_rates(flops_per_s: float):
    """A device that trains at a rate inversely proportional to the model's parameters."""
    return lambda cfg: flops_per_s / (6 * sizing.count_params(cfg))


def test_longer_budgets_buy_larger_models():
    base = ModelConfig(vocab_size=65)
    picks = [sizing.choose_model(base, 10**9, budget, 32, 64, CPU, measure=fake_rates(1e11))
             for budget in (10, 120, 600, 3600, 36_000)]
    sizes = [sizing.count_params(ModelConfig(vocab_size=65, layers=p.layers, hidden=p.hidden)) for p in picks]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    for p, budget in zip(picks, (10, 120, 600, 3600, 36_000), strict=True):
        # Each choice lets the model read its quota of characters, unless it is the smallest rung.
        readable = p.chars_per_s * budget * sizing.USABLE
        assert (p.layers, p.hidden) == sizing.LADDER[0] or readable >= sizing.CHARS_PER_PARAM * p.params
    assert "chars per parameter" in picks[1].reason


def test_regularisation_grows_with_the_passes_the_budget_buys_over_the_corpus():
    most = sizing.REGULARISATION_BY_PASSES[-1][1]
    assert sizing.regularisation_for(0.3) == Regularisation(0.0) and sizing.regularisation_for(100) == most
    regs = [sizing.regularisation_for(p) for p in (0.5, 1, 3, 10, 20, 50, 500)]
    assert [r.dropout + r.weight_drop for r in regs] == sorted(r.dropout + r.weight_drop for r in regs)
    assert regs[0].dropout < regs[-1].dropout and regs[0].weight_drop < regs[-1].weight_drop
    base = ModelConfig(vocab_size=65)
    big = sizing.choose_model(base, 10**8, 600, 32, 64, CPU, measure=fake_rates(1e11))
    small = sizing.choose_model(base, 10**5, 600, 32, 64, CPU, measure=fake_rates(1e11))
    assert small.passes > big.passes and small.regularisation.dropout > big.regularisation.dropout
    assert small.regularisation == sizing.regularisation_for(small.passes)
    assert small.regularisation.describe() in small.reason


def test_a_budget_that_reads_a_small_corpus_many_times_takes_two_layers():
    base = ModelConfig(vocab_size=65)
    many = sizing.choose_model(base, 200_000, 600, 32, 64, CPU, measure=fake_rates(1e11))
    assert (many.layers, many.hidden) == sizing.DEEP_SMALL and many.passes > 20
    assert "too often for one layer" in many.reason
    assert many.regularisation == sizing.regularisation_for(many.passes) == sizing.REGULARISATION_BY_PASSES[-1][1]
    assert "weight drop" in many.reason
    few = sizing.choose_model(base, 10**9, 600, 32, 64, CPU, measure=fake_rates(1e11))
    assert (few.layers, few.hidden) == (1, 512) and few.regularisation == Regularisation(0.0)


def test_a_faster_device_buys_a_larger_model_and_a_small_corpus_caps_it():
    base = ModelConfig(vocab_size=65)
    slow = sizing.choose_model(base, 10**9, 600, 32, 64, CPU, measure=fake_rates(1e11))
    fast = sizing.choose_model(base, 10**9, 600, 32, 64, CPU, measure=fake_rates(1e13))
    assert fast.params > slow.params
    small = sizing.choose_model(base, 50_000, 600, 32, 64, CPU, measure=fake_rates(1e13))
    assert small.params <= sizing.MAX_PARAMS_PER_CHAR * 50_000 or (small.layers, small.hidden) == sizing.LADDER[0]
    assert "too small" in small.reason


def test_a_time_budget_without_a_size_measures_and_chooses_one(tmp_path, corpus_text):
    notes = Notes()
    given = {"embed": 16}  # neither layers nor hidden: the budget decides
    result = train([corpus_text[:20_000]], given, tiny_config(steps=None, time_budget=3, eval_every=None), tmp_path,
                   reporter=notes, sample_every_eval=0)
    ckpt = torch.load(tmp_path / "best.pt", weights_only=True)
    mc = ckpt["model_config"]
    assert (mc["layers"], mc["hidden"]) in (*sizing.LADDER, sizing.DEEP_SMALL)
    assert Regularisation(mc["dropout"], mc["weight_drop"]) in dict(sizing.REGULARISATION_BY_PASSES).values()
    assert mc["embed"] == 16
    assert any("chose" in n and f"{mc['layers']} x {mc['hidden']}" in n for n in notes.notes)
    assert 0 < result.progress.elapsed < 3 + 5  # choosing counts against the budget


def test_given_sizes_are_kept_under_a_time_budget(tmp_path, corpus_text):
    notes = Notes()
    train([corpus_text[:5000]], TINY_MODEL, tiny_config(steps=None, time_budget=1), tmp_path, reporter=notes,
          sample_every_eval=0)
    assert torch.load(tmp_path / "best.pt", weights_only=True)["model_config"]["hidden"] == TINY_MODEL["hidden"]
    assert not any("chose" in n for n in notes.notes)


@pytest.mark.parametrize("options", [{"precision": "bf16"}, {"compile": True}])
def test_bf16_autocast_and_compile_train_on_the_cpu(tmp_path, corpus_text, options):
    result = train([corpus_text[:5000]], TINY_MODEL, tiny_config(steps=12, eval_every=6, **options), tmp_path,
                   sample_every_eval=0)
    ckpt = torch.load(tmp_path / "best.pt", weights_only=True)
    assert all(t.dtype == torch.float32 for t in ckpt["model"].values())  # master weights stay fp32
    losses = [r["val_loss"] for r in result.metrics]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
