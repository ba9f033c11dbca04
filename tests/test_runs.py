"""Setting a run up: resuming refuses contradictions unless forced."""

import pytest
import torch
from conftest import TINY_MODEL, Notes, tiny_config

from charrnn.errors import UsageError
from charrnn.model.config import ModelConfig
from charrnn.training import sizing
from charrnn.training.config import TrainConfig
from charrnn.training.runs import new_model_config, resumed_config
from charrnn.training.train import train


def test_resume_with_other_corpus_or_model_is_refused(tmp_path, corpus_text):
    train([corpus_text[:5000]], TINY_MODEL, tiny_config(steps=3), tmp_path, sample_every_eval=0)
    with pytest.raises(UsageError, match="corpus differs"):
        train([corpus_text[5000:10000]], {}, tiny_config(steps=6), tmp_path, resume=True)
    with pytest.raises(UsageError, match="hidden 64 in the checkpoint, 128 asked for"):
        train([corpus_text[:5000]], {"hidden": 128}, tiny_config(steps=6), tmp_path, resume=True)


def test_force_resume_continues_on_another_corpus_with_the_checkpoints_model(tmp_path, corpus_text):
    train([corpus_text[:5000]], TINY_MODEL, tiny_config(steps=3), tmp_path, sample_every_eval=0)
    res = train([corpus_text[5000:10000]], {"hidden": 128}, tiny_config(steps=6), tmp_path, resume=True, force=True,
                sample_every_eval=0)
    assert res.progress.step == 6
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["model_config"]["hidden"] == TINY_MODEL["hidden"]  # a trained model keeps its shape


@pytest.mark.parametrize("steps, epochs", [(4, None), (400, None), (4000, None), (None, 20.0), (4000, 3.0)])
def test_without_dropout_the_passes_the_budget_buys_set_the_regularisation(steps, epochs):
    cfg, notes = tiny_config(steps=steps, epochs=epochs), Notes()  # 8 x 32 = 256 chars a step
    mc, _ = new_model_config({"layers": 1, "hidden": 32}, 30, 5000, cfg, torch.device("cpu"), notes)
    passes = min(p for p in ((steps or 1e9) * 256 / 5000, epochs or 1e9))
    memorised = sizing.memorisation(passes, sizing.count_params(mc, embedding=False), 5000)
    assert mc.regularisation == sizing.regularisation_for(memorised) and f"~{passes:.1f} times" in notes.notes[-1]
    assert "parameters per character" in notes.notes[-1]


@pytest.mark.parametrize("steps, optimizer, beta1", [(4, "muon", 0.0), (400, "adamw", 0.9), (None, "adamw", 0.9)])
def test_the_optimiser_and_beta1_follow_the_passes_unless_given(steps, optimizer, beta1):
    # 8 x 32 = 256 chars a step over 5,000 training chars: 4 steps read it 0.2 times, 400 steps 20 times.
    notes = Notes()
    _, cfg = new_model_config({"layers": 1, "hidden": 32}, 30, 5000 if steps != 400 else 2000, tiny_config(steps=steps),
                              torch.device("cpu"), notes)
    assert (cfg.optimizer, cfg.beta1) == (optimizer, beta1)
    assert (f"--optimizer {optimizer} and --beta1 {beta1:g}" in " ".join(notes.notes)) == (steps is not None)
    _, mine = new_model_config({"layers": 1, "hidden": 32}, 30, 5000, tiny_config(steps=4, optimizer="muon-gates"),
                               torch.device("cpu"), notes := Notes())
    assert (mine.optimizer, mine.beta1) == ("muon-gates", 0.0) and "(give --beta1 to choose)" in notes.notes[0]


def test_under_a_time_budget_the_size_is_timed_with_the_optimiser_the_passes_call_for():
    notes = Notes()
    model, cfg = new_model_config({"embed": 16}, 30, 10**9, tiny_config(steps=None, time_budget=30),
                                  torch.device("cpu"), notes)
    assert cfg.optimizer == sizing.optimizer_for(0.01) == "muon"  # 10^9 characters: read a small part of once
    assert any("--optimizer muon" in n for n in notes.notes)
    many = new_model_config({"embed": 16}, 30, 3000, tiny_config(steps=None, time_budget=30), torch.device("cpu"),
                            Notes())[1]
    assert many.optimizer == "adamw"


@pytest.mark.parametrize("given", [{"dropout": 0.05}, {"weight_drop": 0.2}, {"dropout": 0.05, "weight_drop": 0.2}])
def test_a_given_dropout_or_weight_drop_sets_both_by_hand(given):
    # 4,000 steps read 5,000 chars ~200 times: the budget alone would give both (test below).
    for budget in (tiny_config(steps=4000), tiny_config(steps=None, time_budget=60)):
        mc, _ = new_model_config(dict(given), 30, 5000, budget, torch.device("cpu"), Notes())
        assert (mc.dropout, mc.weight_drop) == (given.get("dropout", 0.1), given.get("weight_drop", 0.0))


def test_no_budget_leaves_the_regularisation_alone():
    notes = Notes()
    mc, _ = new_model_config({}, 30, 5000, tiny_config(steps=None), torch.device("cpu"), notes)
    assert mc.regularisation == ModelConfig(vocab_size=30).regularisation and not notes.notes


def test_a_time_budget_with_a_given_size_times_it_for_the_dropout():
    notes = Notes()
    mc, _ = new_model_config({"layers": 1, "hidden": 32}, 30, 1000, tiny_config(steps=None, time_budget=60),
                          torch.device("cpu"), notes)
    # 1,000 chars read for a minute: the most regularisation there is.
    assert mc.hidden == 32 and mc.regularisation == sizing.REGULARISATION_BY_MEMORISATION[-1][1]
    assert "weight drop" in notes.notes[-1]


@pytest.mark.parametrize("own, asked, kept", [("fp32", None, "fp32"), ("auto", None, "auto"), ("fp16", None, "fp16"),
                                              ("fp32", "bf16", "bf16"), ("bf16", "auto", "auto")])
def test_a_resumed_run_keeps_its_own_precision_unless_one_is_given(own, asked, kept):
    prev = {"train_config": tiny_config(precision=own).to_dict()}
    notes = Notes()
    assert resumed_config(prev, tiny_config(precision=asked), notes).precision == kept
    said = " ".join(notes.notes)
    if asked not in (None, own):
        assert f"in {asked} as asked (the run trained in {own})" in said
    elif own != "auto":
        assert f"in {own}, the run's own precision" in said
    else:
        assert not said  # auto stays auto: nothing to say


def test_a_new_run_records_the_precision_and_streams_it_trained_with(tmp_path, corpus_text):
    train([corpus_text[:5000]], TINY_MODEL, TrainConfig(steps=2, eval_every=2, device="cpu"), tmp_path, sample_every_eval=0)
    tc = torch.load(tmp_path / "last.pt", weights_only=True)["train_config"]
    assert (tc["precision"], tc["batch_size"], tc["lr"]) == ("auto", 32, 5e-3)  # a CPU's defaults, as always
