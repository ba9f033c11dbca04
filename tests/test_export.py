"""charrnn export: the one-step ONNX model, run by onnxruntime, gives torch's logits; docs/exporting.md's example writes
what charrnn sample writes; the contract's names, shapes and metadata; bad input."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, page_steps, tiny_config
from inprocess import invoke

from charrnn.api.loading import load_model
from charrnn.export.onnx import export_onnx
from charrnn.training.train import train

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[dev]')")


@pytest.fixture(scope="module", params=["lstm", "gru", "rnn"])
def exported(request, tmp_path_factory, corpus_text):
    """A two-layer model of each cell, trained a little, and its export."""
    d = tmp_path_factory.mktemp(f"export-{request.param}")
    train([corpus_text[:8000]], dict(cell=request.param, layers=2, hidden=48, embed=12, dropout=0.0),
          tiny_config(steps=20, eval_every=20), d, sample_every_eval=0)
    model, vocab, ckpt = load_model(d / "best.pt")
    return model, vocab, export_onnx(model, vocab, ckpt, d / "model.onnx")


def test_onnxruntime_gives_torchs_logits_over_a_thousand_steps_at_any_batch(exported):
    model, vocab, path = exported
    session = ort.InferenceSession(str(path))
    parts = model.cell.state_parts
    for batch in (1, 3):
        gen = torch.Generator().manual_seed(batch)
        state = model.init_state(batch)
        flat = np.zeros((parts * model.config.layers, batch, model.config.hidden), np.float32)
        ids = torch.zeros(batch, dtype=torch.long)
        worst = 0.0
        for _ in range(1000):
            logits, state = model.step(ids, state)
            got, flat = session.run(None, {"ids": ids.numpy(), "state": flat})
            worst = max(worst, float(np.abs(got - logits.numpy()).max()))
            ids = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)[:, 0]  # a path through likely text
        assert worst < 1e-4, f"{model.config.cell}: logits differ by {worst} at batch {batch}"
        torch_state = torch.cat(model.cell.unpack(state)).numpy()
        assert np.abs(flat - torch_state).max() < 1e-4


def test_the_contract_names_shapes_and_metadata(exported):
    model, vocab, path = exported
    session = ort.InferenceSession(str(path))
    parts, c = model.cell.state_parts, model.config
    assert [(i.name, i.type, i.shape) for i in session.get_inputs()] == [
        ("ids", "tensor(int64)", ["batch"]), ("state", "tensor(float)", [parts * c.layers, "batch", c.hidden])]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [
        ("logits", ["batch", len(vocab)]), ("next_state", [parts * c.layers, "batch", c.hidden])]
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["charrnn.vocab"]) == [None, *vocab.chars]
    info = json.loads(meta["charrnn.info"])
    assert (info["cell"], info["layers"], info["hidden"], info["state_parts"]) == (c.cell, c.layers, c.hidden, parts)
    assert info["trained"]["steps"] == 20


def readme_example() -> str:
    manual = (ROOT / "docs" / "exporting.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(# Writing with an exported charrnn model.*?)```", manual, re.S)
    assert block, "docs/exporting.md has lost its onnxruntime example"
    return block.group(1)


def test_the_readmes_example_writes_what_sample_writes_greedily(tmp_path):
    r = invoke("export", "-c", "base", "model.onnx", "-q", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    (tmp_path / "example.py").write_text(readme_example(), encoding="utf-8")
    ran = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    greedy = invoke("sample", "-c", "base", "--greedy", "--prime", "ROMEO.", "--length", "200", "-q", cwd=tmp_path)
    assert ran.stdout == greedy.stdout and len(ran.stdout) > 50


@pytest.mark.parametrize("args, message", [(["model.txt"], "give a file name ending in .onnx"),
                                           (["-c", "nowhere.pt", "m.onnx"], "no such checkpoint")])
def test_bad_exports_are_one_line_and_write_nothing(tmp_path, args, message):
    r = invoke("export", *args, cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stdout == "" and not list(tmp_path.iterdir())


def test_without_the_exporter_the_fix_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    r = invoke("export", "-c", "base", "m.onnx", cwd=tmp_path)
    assert r.returncode == 2 and "pip install 'charrnn[export]'" in r.stderr
    assert not (tmp_path / "m.onnx").exists() and Path(tmp_path).exists()


def test_the_web_export_is_the_serve_page_with_the_model_in_it(tmp_path):
    r = invoke("export", "-c", "base", "--web", "site", "-q", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    site = tmp_path / "site"
    page = site / "index.html"
    served = (ROOT / "charrnn" / "serve" / "web" / "index.html").read_text(encoding="utf-8")
    assert page.read_text(encoding="utf-8") == served.replace(
        "<script>", '<script src="model.js"></script>\n<script src="local.js"></script>\n<script>')  # shared, not copied
    assert not re.search(r"(src|href)=\"?https?:", "".join(f.read_text(encoding="utf-8")[:200_000] for f in site.iterdir()))
    bad = invoke("export", "--web", "site/index.html", cwd=tmp_path)
    assert bad.returncode == 2 and "--web writes a folder" in bad.stderr


def test_the_web_pages_arithmetic_writes_what_sample_writes_greedily(tmp_path):
    # The page's own step, run by node (no browser needed): greedy from a prime, as the manual's example does.
    import shutil

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the browser test in test_page.py checks the page itself)")
    invoke("export", "-c", "base", "--web", "site", "-q", cwd=tmp_path)
    script = """globalThis.window = globalThis;
require('./site/model.js'); require('./site/local.js');
const S = window.charrnnStep, st = S.fresh(), index = new Map(S.vocab.map((c, i) => [c, i]));
let logits, text = '';
for (const id of [0, ...Array.from('ROMEO.').map((c) => index.get(c))]) logits = S.step(id, st);
for (let k = 0; k < 200; k++) {
  let best = 0; for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  if (best === 0) break;
  text += S.vocab[best]; logits = S.step(best, st);
}
process.stdout.write('ROMEO.' + text + '\\n');"""
    (tmp_path / "greedy.js").write_text(script, encoding="utf-8")
    ran = subprocess.run([node, "greedy.js"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    greedy = invoke("sample", "-c", "base", "--greedy", "--prime", "ROMEO.", "--length", "200", "-q", cwd=tmp_path)
    assert ran.stdout == greedy.stdout


def test_the_web_pages_step_gives_torchs_logits_for_every_cell(exported, tmp_path):
    from charrnn.export.web import export_web

    model, vocab, onnx_path = exported
    export_web(model, vocab, load_model(onnx_path.parent / "best.pt")[2], tmp_path / "site", "t")
    gen = torch.Generator().manual_seed(0)
    ids = [0, *torch.randint(1, len(vocab), (99,), generator=gen).tolist()]
    state, worst = model.init_state(1), 0.0
    for id_, js in zip(ids, page_steps(tmp_path, ids), strict=True):
        logits, state = model.step(torch.tensor([id_]), state)
        worst = max(worst, float(np.abs(np.array(js) - logits[0].numpy()).max()))
    assert worst < 1e-4, f"{model.config.cell}: the page's logits differ from torch's by {worst}"


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    import errno

    import onnx

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(onnx, "save", full)
    r = invoke("export", "-c", "base", "model.onnx", "-q", cwd=tmp_path)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "could not write model.onnx: No space left on device; free disk space" in r.stderr
    assert not list(tmp_path.iterdir())
