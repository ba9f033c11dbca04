"""Fine-tuning (`train --init`): a base's weights, its vocabulary grown, lineage, resume, bad input, the bundled base."""

import hashlib
import subprocess

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_MODEL, tiny_config
from inprocess import invoke as cli

from charrnn.api.loading import load_model
from charrnn.model.checkpoint import BUNDLED, load_checkpoint
from charrnn.model.network import CharRNN
from charrnn.text.data import Vocab
from charrnn.training.finetune import NEW_CHAR_SHARE, grown_weights, load_base
from charrnn.training.train import train
from charrnn.writing.config import SampleConfig
from charrnn.writing.sample import generate

NEW = ("þ", "ŋ")  # in neither the base corpus nor its vocabulary




BASE_TEXT = slice(0, 20_000)  # of corpus_text: what the base is trained on


def with_new_chars(text: str, corpus_text: str) -> str:
    """Text B: `text` with only characters of the base corpus, and then NEW in place of 'th' and 'ng'."""
    known = set(corpus_text[BASE_TEXT])
    return "".join(c for c in text if c in known).replace("th", NEW[0]).replace("ng", NEW[1])


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, corpus_text):
    """A tiny model trained on text A; text B (with two characters A lacks) is what it is fine-tuned on."""
    out = tmp_path_factory.mktemp("base")
    train([corpus_text[BASE_TEXT]], TINY_MODEL, tiny_config(steps=150, eval_every=50), out, sample_every_eval=0)
    return out


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory, base_run, corpus_text):
    out = tmp_path_factory.mktemp("tuned")
    (out / "b.txt").write_text(with_new_chars(corpus_text[20_000:32_000], corpus_text), encoding="utf-8")
    r = cli("train", out / "b.txt", "--init", base_run, "--steps", "120", "--eval-every", "60", "--lr", "0.01",
            "--batch-size", "8", "--seq-len", "32", "--out", out / "run", "--no-plot", "--sample-length", "0", cwd=out)
    assert r.returncode == 0, r.stderr
    assert "--init: starting from" in r.stderr and "2 new character(s) added: 'þŋ'" in r.stderr
    return out


def test_fine_tuning_onto_new_characters_keeps_old_ids_and_writes_the_new_ones(base_run, tuned_run):
    base, tuned = load_checkpoint(base_run / "best.pt"), load_checkpoint(tuned_run / "run" / "best.pt")
    assert tuned["vocab"] == base["vocab"] + list(NEW)  # old ids kept, new ones appended
    assert {k: v for k, v in tuned["model_config"].items() if k in ("cell", "layers", "hidden", "embed")} == \
        {k: v for k, v in base["model_config"].items() if k in ("cell", "layers", "hidden", "embed")}
    assert tuned["progress"]["step"] == 120 and tuned["base"]["sha256"] == \
        hashlib.sha256((base_run / "best.pt").read_bytes()).hexdigest()
    assert tuned["base"]["corpus_fingerprint"] == base["corpus"]["fingerprint"]
    model, vocab, _ = load_model(tuned_run / "run" / "best.pt")
    cfg = SampleConfig(length=1500, num_samples=8, seed=1)
    text = "".join(c for _, c in generate(model, vocab, "", cfg, "cpu") if c is not None)
    assert NEW[0] in text and NEW[1] in text


def test_the_grown_model_starts_as_good_as_the_base_on_old_text(base_run, corpus_text):
    base = load_base(base_run)
    vocab = Vocab(base.vocab.chars + NEW)
    old_model, new_model = CharRNN(base.model_config).eval(), CharRNN(
        type(base.model_config)(**{**base.model_config.to_dict(), "vocab_size": len(vocab)})).eval()
    old_model.load_state_dict(base.weights)
    new_model.load_state_dict(grown_weights(base, vocab))
    held_out = "".join(c for c in corpus_text[30_000:34_000] if c in base.vocab)
    ids = torch.from_numpy(base.vocab.encode(held_out))[None]
    with torch.no_grad():
        old_logits, new_logits = old_model(ids[:, :-1])[0][0], new_model(ids[:, :-1])[0][0]
    old_loss = F.cross_entropy(old_logits, ids[0, 1:]).item()
    new_loss = F.cross_entropy(new_logits, ids[0, 1:]).item()
    # Equal but for the new characters' small share, which Jensen's inequality bounds.
    assert old_loss <= new_loss <= old_loss + len(NEW) * NEW_CHAR_SHARE / (len(base.vocab) - 1)
    assert torch.allclose(new_logits[:, : len(base.vocab)], old_logits)  # old rows untouched
    p_new = new_logits.softmax(-1)[:, len(base.vocab):]
    assert (p_new > 0).all() and p_new.mean() < 1 / len(base.vocab)  # possible, and unlikely at first


def test_resume_of_a_fine_tuned_run_continues_it_and_keeps_its_lineage(base_run, tuned_run, tmp_path):
    flags = ["--batch-size", "8", "--seq-len", "32", "--eval-every", "60", "--no-plot", "--sample-length", "0"]
    run_dir = tmp_path / "run"
    subprocess.run(["cp", "-r", str(tuned_run / "run"), str(run_dir)], check=True)
    r = cli("train", tuned_run / "b.txt", "--init", base_run, "--resume", "--steps", "150", "--out", run_dir, *flags,
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli("train", tuned_run / "b.txt", "--resume", "--steps", "180", "--out", run_dir, *flags, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    last = load_checkpoint(run_dir / "last.pt")
    assert last["progress"]["step"] == 180 and last["base"]["checkpoint"] == str(base_run / "best.pt")
    info = cli("info", "-c", run_dir, cwd=tmp_path)
    assert "fine-tuned from" in info.stdout and "added 2 char(s)" in info.stdout


def test_line_documents_fine_tune_from_a_file_base(base_run, tmp_path):
    names = ["Ŋara", "Þor", "Anna", "Bob", "Cleo", "Dag"] * 40
    res = train(names, {}, tiny_config(steps=30, whole_documents=True), tmp_path, sample_every_eval=0, init=base_run,
                doc_mode={"lines": True, "doc_sep": None})
    ckpt = load_checkpoint(tmp_path / "best.pt")
    assert res.progress.step == 30 and ckpt["corpus"]["lines"] and ckpt["base"]
    assert ckpt["vocab"][: len(load_checkpoint(base_run / "best.pt")["vocab"])] == \
        load_checkpoint(base_run / "best.pt")["vocab"]


@pytest.fixture
def bad_files(tmp_path, base_run, corpus_text):
    (tmp_path / "b.txt").write_text(with_new_chars(corpus_text[:3000], corpus_text), encoding="utf-8")
    raw = (base_run / "best.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    newer = load_checkpoint(base_run / "best.pt")
    torch.save({**newer, "version": 99}, tmp_path / "newer.pt")
    (tmp_path / "base.pt").write_bytes(raw)
    train([corpus_text[:3000]], TINY_MODEL, tiny_config(steps=5), tmp_path / "other", sample_every_eval=0)
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["--init", "missing.pt"], "no such checkpoint"),
    (["--init", "cut.pt"], "not a readable checkpoint"),
    (["--init", "foreign.pt"], "not a charrnn checkpoint"),
    (["--init", "newer.pt"], "newer than this charrnn reads"),
    (["--init", "base.pt", "--max-vocab", "40"], "raise --max-vocab"),
    (["--init", "base.pt", "--hidden", "128"], "--init takes the model's shape from base.pt (--hidden 64); drop --hidden"),
    (["--init", "base.pt", "--resume", "--out", "other"], "did not start from base.pt (it was trained from scratch)"),
])
def test_bad_init_is_one_line_and_writes_nothing(bad_files, args, message):
    before = sorted(p.name for p in bad_files.rglob("*"))
    r = cli("train", "b.txt", *args, "--steps", "5", cwd=bad_files)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in bad_files.rglob("*")) == before  # nothing written


@pytest.mark.skipif(not BUNDLED.is_file(), reason="no bundled base model (make base)")
def test_the_bundled_model_samples_with_no_run_and_fine_tunes_as_base(tmp_path, corpus_text):
    r = cli("sample", "-n", "3", "--length", "60", "--seed", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "bundled base model" in r.stderr and len(r.stdout.strip()) > 60
    quiet = cli("sample", "-n", "3", "--length", "60", "--seed", "1", "-q", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == r.stdout
    (tmp_path / "line.txt").write_text("ROMEO.\n", encoding="utf-8")
    for command in (["eval", "line.txt"], ["score", "line.txt"], ["inspect", "line.txt"]):  # as docs/training.md says: all four
        used = cli(*command, cwd=tmp_path)
        assert used.returncode == 0 and "bundled base model" in used.stderr and used.stdout, (command, used.stderr)
    (tmp_path / "b.txt").write_text(with_new_chars(corpus_text[:5000], corpus_text), encoding="utf-8")
    r = cli("train", "b.txt", "--init", "base", "--steps", "3", "--eval-every", "3", "--sample-length", "0", "--no-plot",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(tmp_path / "checkpoints" / "b" / "best.pt")["base"]["checkpoint"] == str(BUNDLED)
