"""Output heads: the adaptive softmax is exact (its log-probabilities normalise, its training loss is their
cross-entropy), --softmax auto decides by measured speed, and every path works with an adaptive model: eval,
score, inspect, sampling with every rule, dynamic evaluation, resume, --init with new characters, serve,
ONNX and the web page."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import Notes, Server, page_steps, tiny_config
from inprocess import invoke

from charrnn.api.loading import load_model
from charrnn.model.config import SOFTMAX, ModelConfig
from charrnn.model.heads import HEADS, IGNORE, MIN_SHORTLIST, AdaptiveHead, cutoffs_for
from charrnn.model.network import CharRNN
from charrnn.training import sizing
from charrnn.training.runs import new_model_config


def zipf_text(n: int = 30_000, distinct: int = 700, seed: int = 0) -> str:
    """Text over `distinct` CJK characters drawn with Zipf frequencies, in 'words' and lines: a large vocabulary
    whose frequent characters cover most of it, as Chinese text's do."""
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, distinct + 1)
    chars = [chr(0x4E00 + i) for i in range(distinct)]
    words = ["".join(chars[i] for i in rng.choice(distinct, size=rng.integers(1, 4), p=p / p.sum())) for _ in range(400)]
    picks = rng.choice(len(words), size=n // 3, p=(q := 1 / np.arange(1, 401)) / q.sum())
    return "".join(words[i] + ("\n" if k % 9 == 8 else "，") for k, i in enumerate(picks))[:n]


@pytest.fixture(scope="module")
def adaptive_run(tmp_path_factory):
    """A tiny adaptive-softmax model trained for real on a large vocabulary; the run directory."""
    d = tmp_path_factory.mktemp("adaptive")
    (d / "zh.txt").write_text(zipf_text(), encoding="utf-8")
    r = invoke("train", "zh.txt", "--out", "run", "--softmax", "adaptive", "--layers", "1", "--hidden", "48",
               "--embed", "16", "--steps", "60", "--eval-every", "30", "--batch-size", "8", "--seq-len", "32",
               "--seed", "3", cwd=d)
    assert r.returncode == 0, r.stderr
    held = (d / "zh.txt").read_text(encoding="utf-8")[-2000:].replace("\n", "，")  # from the validation text
    (d / "held.txt").write_text(held, encoding="utf-8")
    return d


def test_the_softmax_choices_are_the_heads():
    assert ("auto", *HEADS) == SOFTMAX


def test_adaptive_log_probabilities_normalise_and_its_loss_is_their_cross_entropy():
    torch.manual_seed(0)
    counts = np.random.default_rng(0).zipf(1.5, 3000) % 900
    counts = np.bincount(counts, minlength=900)
    head = AdaptiveHead(24, 900, cutoffs_for(counts), counts)
    h = torch.randn(500, 24, requires_grad=True)
    y = torch.randint(0, 900, (500,))  # every cluster has targets
    y[::7] = IGNORE
    lp = head(h)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(500), atol=1e-5)
    want = F.cross_entropy(lp, y, ignore_index=IGNORE, reduction="none")
    got = head.nll(h, y)
    assert torch.allclose(got, want, atol=1e-5) and bool((got[::7] == 0).all())
    got.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())  # rare targets reach their cluster


def test_cutoffs_split_only_a_large_vocabulary_into_clusters_of_sensible_size():
    assert cutoffs_for(np.arange(100)) == ()  # too small to split
    counts = np.bincount(np.random.default_rng(1).zipf(1.3, 200_000) % 5000, minlength=5000)
    cuts = cutoffs_for(counts)
    assert cuts[0] >= MIN_SHORTLIST and list(cuts) == sorted(cuts) and 1 <= len(cuts) <= 2
    covered = np.sort(counts)[::-1][: cuts[0]].sum() / counts.sum()
    assert covered >= 0.9


@pytest.mark.parametrize(("gain", "want"), [(3.0, "adaptive"), (1.05, "full")])
def test_auto_takes_adaptive_only_where_it_measures_faster(monkeypatch, gain, want):
    def measure(cfg, batch, seq_len, device, counts=None, **kw):
        return 1000.0 * (gain if cfg.softmax == "adaptive" else 1.0)

    monkeypatch.setattr(sizing, "measure_chars_per_s", measure)
    counts = np.bincount(np.random.default_rng(1).zipf(1.3, 100_000) % 3000, minlength=3000)
    notes = Notes()
    mc, _ = new_model_config({"layers": 1, "hidden": 32}, 3000, 100_000, tiny_config(), torch.device("cpu"), notes,
                             counts=lambda: counts)
    assert mc.softmax == want and bool(mc.cutoffs) == (want == "adaptive")
    assert any("adaptive softmax" in n and "as fast" in n for n in notes.notes) == (want == "adaptive")
    small, _ = new_model_config({"layers": 1, "hidden": 32}, 80, 100_000, tiny_config(), torch.device("cpu"), Notes())
    assert small.softmax == "full"  # a small vocabulary is not even measured


def test_an_adaptive_run_says_so_and_scores_exactly(adaptive_run):
    d = adaptive_run
    model, vocab, ckpt = load_model(d / "run" / "best.pt")
    assert model.config.softmax == "adaptive" and len(model.config.cutoffs) >= 1
    info = invoke("info", "-c", "run", cwd=d)
    assert "adaptive softmax" in info.stdout
    text = (d / "held.txt").read_text(encoding="utf-8")
    scored = invoke("eval", "held.txt", "-c", "run", "--json", cwd=d)
    assert scored.returncode == 0, scored.stderr
    nats = json.loads(scored.stdout.splitlines()[-1])["nats_per_char"]
    # The same text one character at a time through the sampling step and a plain softmax.
    ids = [0, *vocab.encode(text), 0]  # a document: EOS, its text, EOS
    state, total = model.init_state(1), 0.0
    for a, b in zip(ids, ids[1:], strict=False):
        scores, state = model.step(torch.tensor([a]), state)
        total -= float(torch.log_softmax(scores.double(), -1)[0, b])
    assert nats == pytest.approx(total / (len(ids) - 1), rel=1e-4)


def test_adaptive_models_sample_with_every_rule_and_feed_every_command(adaptive_run):
    d = adaptive_run
    for flags in ([], ["--top-k", "5"], ["--top-p", "0.8"], ["--greedy"], ["--color", "--temperature", "0.7"],
                  ["--adapt", "--prime", "一丁"]):
        r = invoke("sample", "-c", "run", "-l", "40", "-n", "2", "--seed", "1", *flags, cwd=d)
        assert r.returncode == 0 and r.stdout.strip(), (flags, r.stderr)
    model, vocab, _ = load_model(d / "run" / "best.pt")
    greedy = invoke("sample", "-c", "run", "-l", "20", "--greedy", "--prime", "一", "-q", cwd=d).stdout
    state, ids, out = model.init_state(1), [0, *vocab.encode("一")], ""
    for i in ids:
        scores, state = model.step(torch.tensor([i]), state)
    for _ in range(20):
        nxt = int(scores.argmax())
        if nxt == 0:
            break
        out += vocab.chars[nxt - 1]
        scores, state = model.step(torch.tensor([nxt]), state)
    assert greedy == "一" + out + "\n"  # one newline after the sample (the text itself may end in newlines)
    for args in (["score", "held.txt"], ["inspect", "held.txt", "--json"], ["eval", "held.txt", "--dynamic"]):
        r = invoke(*args, "-c", "run", cwd=d)
        assert r.returncode == 0 and r.stdout, (args, r.stderr)


def test_resume_and_init_with_new_characters_keep_the_adaptive_head(adaptive_run, tmp_path):
    d = adaptive_run
    shutil.copytree(d / "run", tmp_path / "run")
    shutil.copy(d / "zh.txt", tmp_path / "zh.txt")
    r = invoke("train", "zh.txt", "--out", "run", "--resume", "--steps", "80", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    resumed, _, ckpt = load_model(tmp_path / "run" / "last.pt")
    assert ckpt["progress"]["step"] == 80 and resumed.config.cutoffs == load_model(d / "run" / "best.pt")[0].config.cutoffs
    (tmp_path / "more.txt").write_text((d / "zh.txt").read_text(encoding="utf-8")[:3000] + "ΩΨΦ", encoding="utf-8")
    base, old_vocab, _ = load_model(d / "run" / "best.pt")
    tuned = invoke("train", "more.txt", "--init", str(d / "run" / "best.pt"), "--out", "tuned", "--steps", "1",
                   "--eval-every", "1", "--lr", "1e-9", cwd=tmp_path)
    assert tuned.returncode == 0, tuned.stderr
    model, vocab, _ = load_model(tmp_path / "tuned" / "last.pt")
    assert model.config.softmax == "adaptive" and len(vocab) == len(old_vocab) + 3
    # The new characters rank last (the last cluster) and start unlikely; the old ones keep their probabilities.
    assert sorted(model.head.rank[-3:].tolist()) == [len(old_vocab), len(old_vocab) + 1, len(old_vocab) + 2]
    ids = torch.tensor([[0, *old_vocab.encode("一丁七一")]])
    with torch.no_grad():
        old_p, new_p = (torch.softmax(m(ids)[0].double(), -1) for m in (base, model))
    assert float(new_p[..., len(old_vocab):].sum(-1).max()) < 0.01
    assert float((old_p - new_p[..., : len(old_vocab)]).abs().max()) < 0.01
    refused = invoke("train", "more.txt", "--init", str(d / "run" / "best.pt"), "--softmax", "full", "--out", "x", cwd=tmp_path)
    assert refused.returncode == 2 and "drop --softmax" in refused.stderr


def test_serve_answers_with_an_adaptive_model_as_sample_writes(adaptive_run):
    d = adaptive_run
    server = Server(d / "run" / "best.pt", "--threads", "1")
    try:
        status, body = server.post("/v1/completions", {"prompt": "一", "max_tokens": 30, "seed": 4, "temperature": 0.9})
    finally:
        server.stop()
    assert status == 200, body
    local = invoke("sample", "-c", "run", "--prime", "一", "-l", "30", "--seed", "4", "-t", "0.9", "-q", cwd=d).stdout
    assert "一" + body["choices"][0]["text"] == local.rstrip("\n")


def test_the_onnx_export_and_the_web_page_give_the_adaptive_models_distribution(adaptive_run, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[dev]')")
    from charrnn.export.onnx import export_onnx
    from charrnn.export.web import export_web

    model, vocab, ckpt = load_model(adaptive_run / "run" / "best.pt")
    session = ort.InferenceSession(str(export_onnx(model, vocab, ckpt, tmp_path / "m.onnx")))
    ids = [0, *torch.randint(1, len(vocab), (40,), generator=torch.Generator().manual_seed(0)).tolist()]
    state, flat, worst, expected = model.init_state(1), np.zeros((2, 1, model.config.hidden), np.float32), 0.0, []
    for i in ids:
        scores, state = model.step(torch.tensor([i]), state)
        got, flat = session.run(None, {"ids": np.array([i]), "state": flat})
        worst = max(worst, float(np.abs(got - scores.numpy()).max()))
        expected.append(scores[0].numpy())
    assert worst < 1e-4
    export_web(model, vocab, ckpt, tmp_path / "site", "t")
    js = np.array(page_steps(tmp_path, ids))
    assert float(np.abs(js - np.array(expected)).max()) < 1e-4
    assert math.isclose(float(np.exp(js[-1]).sum()), 1.0, rel_tol=1e-6)


def test_a_checkpoint_saved_before_heads_existed_loads_as_full_softmax():
    cfg = ModelConfig(vocab_size=10, hidden=8, embed=4)
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("softmax", "cutoffs")}
    assert CharRNN(ModelConfig(**old)).head.weight.shape == (10, 8)
