"""Optimisers: how a step's gradients become updates. One class each in OPTIMIZERS; `--optimizer` picks one.

- adamw: AdamW with --beta1/--beta2, weight decay on the recurrent and output matrices only.
- muon, muon-gates: Muon (Jordan et al. 2024; torch.optim.Muon) for the recurrent and input matrices of the
  cell: the momentum of each matrix's gradient orthogonalised by --ns-steps Newton-Schulz iterations, with the
  learning rate scaled to match AdamW's update size (Moonshot's rule, 0.2 sqrt(max(rows, cols))), so --lr
  carries over; AdamW for the embedding, the output layer and the biases. muon-gates orthogonalises each gate's
  block of rows (an LSTM's i, f, g, o) on its own instead of the stacked matrix.

Muon is written here rather than taken from torch.optim.Muon because the per-gate variant needs the blocks;
tests/test_optim.py checks that the whole-matrix step equals torch's.
"""

from __future__ import annotations

import torch

from .config import TrainConfig

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # the quintic iteration's, as torch.optim.Muon's
# --optimizer's names (config.OPTIMIZERS) -> Muon's row blocks per recurrent matrix: None, no Muon (AdamW for
# all); 1, the whole matrix; 0, the cell's gates.
OPTIMIZERS: dict[str, int | None] = {"adamw": None, "muon": 1, "muon-gates": 0}


def orthogonalised(g: torch.Tensor, steps: int, eps: float = 1e-7, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """~ U V^T of g's SVD (singular values pushed toward 1 by `steps` Newton-Schulz iterations, in `dtype`)."""
    a, b, c = NS_COEFFICIENTS
    x = g.to(dtype)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)  # the spectral norm at most 1
    for _ in range(steps):  # x <- a x + (b X + c X^2) x, X = x x^T
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return (x.T if tall else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Nesterov momentum, orthogonalised per block of `blocks` equal row blocks, decoupled weight decay.

    The Newton-Schulz products run in bf16 where the device has bf16 kernels, else in fp32: a CPU without
    AVX-512 emulates bf16 products some 20 times slower than fp32 ones (8 s against 0.4 s for a 2048 x 512
    matrix's 5 steps under ONEDNN_MAX_CPU_ISA=AVX2).
    """

    def __init__(self, params, lr: float, weight_decay: float, blocks: int = 1, ns_steps: int = 5, momentum: float = 0.95):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, blocks=blocks, ns_steps=ns_steps, momentum=momentum))
        from ..model.runtime import kernel_problem

        device = self.param_groups[0]["params"][0].device
        self.dtype = torch.bfloat16 if kernel_problem(device, torch.bfloat16) is None else torch.float32

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buf.lerp_(p.grad, 1 - group["momentum"])
                update = p.grad.lerp(buf, group["momentum"])
                rows = update.shape[0] // group["blocks"]
                parts = [orthogonalised(block, group["ns_steps"], dtype=self.dtype) for block in update.split(rows)]
                scale = 0.2 * max(rows, update.shape[1]) ** 0.5
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(torch.cat(parts), alpha=-group["lr"] * scale)


class Combined:
    """Several optimisers over disjoint parameters, driven as one: the trainer sets lr in param_groups, steps,
    zeroes, saves and restores it (`parts` for what must see each one, such as fp16's loss scaler)."""

    def __init__(self, parts: list[torch.optim.Optimizer]):
        self.parts = parts

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.parts for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.parts:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.parts:
            o.step()

    def state_dict(self) -> dict:
        return {"parts": [o.state_dict() for o in self.parts]}

    def load_state_dict(self, state: dict) -> None:
        for o, s in zip(self.parts, state["parts"], strict=True):
            o.load_state_dict(s)


def _adamw(groups: list[dict], cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    beta1 = 0.9 if cfg.beta1 is None else cfg.beta1  # None: not yet settled (runs.set_up), as when sizing times steps
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(beta1, cfg.beta2),
                             **({"fused": True} if device.type == "cuda" else {}))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device, gates: int
                   ) -> torch.optim.Optimizer | Combined:
    """The optimiser --optimizer names for `model` (gates: the cell's gate blocks in each recurrent matrix)."""
    # None: not yet settled (runs.set_up), as when sizing first times steps: AdamW.
    named, blocks = list(model.named_parameters()), OPTIMIZERS[cfg.optimizer or "adamw"]
    recurrent = [p for n, p in named if n.startswith("rnn.weight_")] if blocks is not None else []
    taken = {id(p) for p in recurrent}
    rest = [(n, p) for n, p in named if id(p) not in taken]

    def decays(name: str, p: torch.Tensor) -> bool:  # matrices, not embeddings or biases
        return p.dim() >= 2 and not name.startswith("embed")

    adamw = _adamw([{"params": [p for n, p in rest if decays(n, p)], "weight_decay": cfg.weight_decay},
                    {"params": [p for n, p in rest if not decays(n, p)], "weight_decay": 0.0}], cfg, device)
    if not recurrent:
        return adamw
    muon = Muon(recurrent, lr=cfg.lr, weight_decay=cfg.weight_decay, blocks=blocks or gates, ns_steps=cfg.ns_steps)
    return Combined([muon, adamw])
