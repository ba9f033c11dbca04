"""The one-step model as ONNX: what a runtime outside charrnn needs to write with a trained model.

The contract (docs/exporting.md):
    inputs   ids         int64   [batch]                        the characters just read (EOS = 0 starts a document)
             state       float32 [parts x layers, batch, hidden] the carried state (parts: 2 for an LSTM (h, c), else 1)
    outputs  logits      float32 [batch, vocab]                 the next character's logits (with adaptive softmax,
                                                                its log-probabilities: softmax gives the same distribution)
             next_state  float32 [parts x layers, batch, hidden]
    metadata charrnn.vocab  JSON list of the characters by id, null for EOS at id 0
             charrnn.info   JSON: the shape and a training summary

The graph is CharRNN.step's arithmetic (the cell's own step on weights rearranged once), so exported
logits equal the sampler's; the batch dimension is dynamic.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..errors import CharrnnError, UsageError
from ..model.cells import get_cell
from ..model.network import CharRNN
from ..text.data import Vocab
from . import write_atomically

OPSET = 18


class OneStep(nn.Module):
    """ids (B,) int64 and state (parts x layers, B, hidden) -> logits (B, V) and the next state, as CharRNN.step."""

    def __init__(self, model: CharRNN):
        super().__init__()
        self.model, self.cell = model, model.cell
        self.layers = model.config.layers
        self.weights = [{k: v.detach().clone() for k, v in lw.items()} for lw in model._step_weights()]

    def forward(self, ids: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts = state.chunk(self.cell.state_parts, dim=0)  # each (layers, B, hidden)
        x, new = ids, []
        for layer, lw in enumerate(self.weights):
            out = self.cell.step(lw, x, [p[layer] for p in parts])
            new.append(out)
            x = out[0]
        next_state = torch.cat([torch.stack([layer[i] for layer in new]) for i in range(self.cell.state_parts)])
        return self.model.head(x), next_state


def metadata(vocab: Vocab, ckpt: dict) -> dict[str, str]:
    """charrnn.vocab and charrnn.info, as the contract states them; charrnn.labels for a labelled model."""
    mc, tc, prog = ckpt["model_config"], ckpt.get("train_config", {}), ckpt.get("progress", {})
    info = {"cell": mc["cell"], "layers": mc["layers"], "hidden": mc["hidden"], "embed": mc["embed"],
            "vocab_size": len(vocab), "state_parts": get_cell(mc["cell"]).state_parts,
            "trained": {"steps": prog.get("step"), "best_val_nats_per_char": prog.get("best_val"),
                        "chars_seen": prog.get("chars_seen"), "files": ckpt.get("corpus", {}).get("files")},
            "seq_len": tc.get("seq_len"), "lines": ckpt.get("corpus", {}).get("lines")}
    return {"charrnn.vocab": json.dumps([None, *vocab.chars], ensure_ascii=False),
            "charrnn.info": json.dumps(info, ensure_ascii=False, default=str),
            **({"charrnn.labels": json.dumps(list(vocab.labels), ensure_ascii=False)} if vocab.labels else {})}


def check_target(out: Path) -> None:
    """Refuse, before any work, a target that is not an .onnx file or a missing exporter."""
    if out.suffix != ".onnx":
        raise UsageError(f"{out}: give a file name ending in .onnx")
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise UsageError("charrnn export needs onnx and onnxscript: pip install 'charrnn[export]'") from None


def export_onnx(model: CharRNN, vocab: Vocab, ckpt: dict, out: Path) -> Path:
    """Write the one-step model to `out` (an .onnx file), atomically; returns it. Needs charrnn[export]."""
    import onnx

    check_target(out)
    step = OneStep(model.eval()).eval()
    proto = _traced(step, model.config.layers, model.config.hidden)
    for key, value in metadata(vocab, ckpt).items():
        proto.metadata_props.add(key=key, value=value)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, lambda tmp: onnx.save(proto, str(tmp)))
    return out


def _traced(step: OneStep, layers: int, hidden: int):
    """The ONNX graph of `step`, batch dynamic; the exporter's progress lines, warnings and logs kept off the output."""
    import contextlib
    import io
    import logging
    import warnings

    example = (torch.zeros(2, dtype=torch.long), torch.zeros(step.cell.state_parts * layers, 2, hidden))
    batch = torch.export.Dim("batch", min=1)
    quiet_logs = logging.getLogger("torch.onnx")
    level, quiet_logs.level = quiet_logs.level, logging.ERROR
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(step, example, input_names=["ids", "state"], output_names=["logits", "next_state"],
                                        dynamic_shapes=({0: batch}, {1: batch}), opset_version=OPSET, dynamo=True,
                                        verbose=False)
    except Exception as e:  # the exporter's own failures: one line, not its report
        raise CharrnnError(f"the ONNX exporter failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    finally:
        quiet_logs.level = level
    return program.model_proto
