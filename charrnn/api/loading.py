"""Loading a trained model for use (sampling, scoring): the network, its vocabulary and the checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UsageError
from ..model.checkpoint import load_checkpoint
from ..model.network import CharRNN, ModelConfig
from ..text.data import Vocab


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[CharRNN, Vocab, dict]:
    """A checkpoint's model (in eval mode, on `device`), its vocabulary, and the raw checkpoint dict."""
    ckpt = load_checkpoint(path)
    try:
        model = CharRNN(ModelConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
        vocab = Vocab.from_record(ckpt)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise UsageError(f"{path}: the checkpoint is incomplete or inconsistent ({str(e).splitlines()[0][:120]})") from None
    return model.to(device).eval(), vocab, ckpt
