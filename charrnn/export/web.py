"""The model in a static page: serve's co-writing page, unchanged, with the model answering its API in the page.

`charrnn export --web DIR` writes DIR/index.html (serve's page, web/index.html, with two scripts put before its
own), DIR/model.js (the weights, base64 in a script, so the page opens from file:// too: browsers refuse
fetch() there) and DIR/local.js (the cells' arithmetic and the sampler, answering GET /v1/info and POST
/v1/sample as `charrnn serve` does). Nothing is fetched from the network; any static host serves it.
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import CharrnnError, UsageError
from ..model.network import CharRNN
from ..text.data import Vocab
from . import write_atomically

SCRIPTS = '<script src="model.js"></script>\n<script src="local.js"></script>\n'


def page_with_local_model() -> str:
    """serve's page, with the scripts that answer its API in the page placed before its own."""
    page = (resources.files("charrnn.serve") / "web" / "index.html").read_text(encoding="utf-8")
    if page.count("<script>") != 1:
        raise CharrnnError("serve's page no longer has exactly one <script>; update export/web.py")
    return page.replace("<script>", SCRIPTS + "<script>")


def model_script(model: CharRNN, vocab: Vocab, name: str, summary: dict) -> str:
    """window.CHARRNN_MODEL: config, vocabulary (null for EOS; labels, whose ids follow), and every parameter as
    float32, base64."""
    tensors, chunks, offset = {}, [], 0
    for key, value in model.state_dict().items():
        a = value.detach().float().cpu().numpy().ravel()
        tensors[key] = [offset, int(a.size)]
        chunks.append(a)
        offset += a.size
    blob = base64.b64encode(np.concatenate(chunks).astype("<f4").tobytes()).decode()
    c = model.config
    meta = {"name": name, "summary": summary, "vocab": [None, *vocab.chars], "labels": list(vocab.labels), "tensors": tensors,
            "config": {"cell": c.cell, "layers": c.layers, "hidden": c.hidden, "embed": c.embed, "cutoffs": list(c.cutoffs)}}
    return f"window.CHARRNN_MODEL = {json.dumps(meta, ensure_ascii=False)[:-1]}, \"weights\": \"{blob}\"}};\n"


def export_web(model: CharRNN, vocab: Vocab, ckpt: dict, out: Path, name: str) -> Path:
    """Write the static site into the folder `out` (made if missing; an existing index.html is replaced)."""
    from ..training.describe import describe

    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file; --web writes a folder: give a new or existing directory")
    out.mkdir(parents=True, exist_ok=True)
    summary = dict(describe(ckpt))
    files = {"index.html": page_with_local_model(), "model.js": model_script(model, vocab, name, summary),
             "local.js": (resources.files("charrnn.export") / "web" / "local.js").read_text(encoding="utf-8")}
    for filename, text in files.items():
        write_atomically(out / filename, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
    return out
