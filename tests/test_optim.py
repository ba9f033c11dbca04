"""Optimisers: Muon's step equals torch.optim.Muon's on a whole matrix, the per-gate variant orthogonalises each
gate's block, and a Muon run trains and resumes exactly."""

import pytest
import torch
from conftest import TINY_MODEL, tiny_config

from charrnn.training.config import OPTIMIZERS
from charrnn.training.optim import OPTIMIZERS as BUILT
from charrnn.training.optim import Muon, orthogonalised
from charrnn.training.train import train


def test_the_optimizer_choices_are_the_built_ones():
    assert tuple(BUILT) == OPTIMIZERS


def test_muon_on_a_whole_matrix_steps_as_torchs_muon():
    torch.manual_seed(0)
    ours, theirs = torch.nn.Parameter(torch.randn(64, 24)), torch.nn.Parameter(torch.randn(64, 24))
    theirs.data.copy_(ours.data)
    a = Muon([ours], lr=0.01, weight_decay=0.1, blocks=1, ns_steps=5)
    a.dtype = torch.bfloat16  # as torch's, even where this CPU's bf16 is emulated and ours would take fp32
    b = torch.optim.Muon([theirs], lr=0.01, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
    for _ in range(3):
        g = torch.randn(64, 24)
        ours.grad, theirs.grad = g.clone(), g.clone()
        a.step()
        b.step()
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_muon_takes_fp32_where_bf16_kernels_are_missing(monkeypatch):
    import charrnn.model.runtime

    monkeypatch.setattr(charrnn.model.runtime, "kernel_problem", lambda device, dtype, cell="lstm": "no bf16 here")
    assert Muon([torch.nn.Parameter(torch.zeros(4, 4))], lr=0.1, weight_decay=0.0).dtype == torch.float32


def test_per_gate_blocks_are_each_orthogonalised():
    torch.manual_seed(1)
    p = torch.nn.Parameter(torch.zeros(4 * 16, 16))
    p.grad = torch.randn(64, 16) * torch.tensor([1.0, 10.0, 100.0, 1000.0]).repeat_interleave(16)[:, None]
    Muon([p], lr=1.0, weight_decay=0.0, blocks=4, ns_steps=5, momentum=0.0).step()
    # Each gate's block moves alike, whatever the scale of its gradient: orthogonalised on its own.
    norms = [float(block.norm()) for block in p.detach().split(16)]
    assert max(norms) / min(norms) < 1.5
    whole = orthogonalised(p.grad, 5)
    assert float(whole[:16].norm()) < 0.1 * float(whole[48:].norm())  # the stacked matrix would not


@pytest.mark.parametrize("optimizer", ["muon", "muon-gates"])
def test_a_muon_run_learns_and_resumes_exactly(tmp_path, corpus_text, optimizer):
    from test_trainer import StopAt

    from charrnn.training.config import TrainConfig

    cfg = tiny_config(steps=30, eval_every=15, optimizer=optimizer)
    whole = train([corpus_text[:6000]], TINY_MODEL, cfg, tmp_path / "whole", sample_every_eval=0)
    assert whole.metrics[-1]["train_loss"] < whole.metrics[0]["train_loss"]
    part = train([corpus_text[:6000]], TINY_MODEL, cfg, tmp_path / "part", reporter=StopAt(12), sample_every_eval=0)
    assert part.progress.stopped == "interrupted"
    train([corpus_text[:6000]], {}, TrainConfig(device="cpu"), tmp_path / "part", resume=True, sample_every_eval=0)
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
