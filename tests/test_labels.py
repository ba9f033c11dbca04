"""Labels: documents of several kinds in one model (train --label-sep / --label-from-file), asked for by kind
(sample --label, score/eval --label, /v1/sample's label), named in info, grown by --init."""

import json
import math
import random
import re

import numpy as np
import pytest
import test_page
import torch
from conftest import Server, openai_client
from inprocess import invoke as run
from test_page import browser  # noqa: F401, F811 (a fixture)
from test_serve import stream

from charrnn.api.loading import load_model
from charrnn.errors import UsageError
from charrnn.model.checkpoint import load_checkpoint
from charrnn.scoring.evaluation import evaluate, score_documents, score_kinds
from charrnn.text.config import DocumentConfig
from charrnn.text.corpus import corpus_from_docs, documents_or_files, prepare_corpus
from charrnn.text.data import EOS, Vocab, document_stream, split_documents
from charrnn.text.labels import Labelled, cut_labels
from charrnn.training.finetune import grown_weights, load_base
from charrnn.writing.config import SampleConfig
from charrnn.writing.sample import complete_samples

LETTERS, DIGITS = "abcdefgh", "0123456789"


def kinds_corpus(n: int = 400, seed: int = 0) -> str:
    """Lines 'letters<TAB>text' and 'digits<TAB>text': two kinds with no character in common."""
    rng = random.Random(seed)
    rows = [f"letters\t{''.join(rng.choice(LETTERS) for _ in range(rng.randint(4, 12)))}" for _ in range(n)]
    rows += [f"digits\t{''.join(rng.choice(DIGITS) for _ in range(rng.randint(4, 12)))}" for _ in range(n // 2)]
    rng.shuffle(rows)
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def kinds_run(tmp_path_factory):
    """A tiny model trained for real on the two kinds, labelled by --label-sep (a literal \\t, as a shell passes it)."""
    d = tmp_path_factory.mktemp("kinds")
    (d / "kinds.txt").write_text(kinds_corpus(), encoding="utf-8")
    r = run("train", "kinds.txt", "--lines", "--label-sep", "\\t", "--steps", "250", "--hidden", "64", "--embed", "16",
            "--dropout", "0", "--sample-length", "0", "--seed", "3", "-q", cwd=d)
    assert r.returncode == 0, r.stderr
    return d / "checkpoints" / "kinds"


@pytest.fixture(scope="module")
def kinds_model(kinds_run):
    return load_model(kinds_run / "best.pt")


# -- reading labels ------------------------------------------------------------------------------

def test_cut_labels_splits_at_the_first_separator_and_drops_empty_texts():
    got = cut_labels(["en: Hello: world", " fr :Bonjour", "en:   "], ":", "x.txt")
    assert got.texts == [" Hello: world", "Bonjour"] and got.labels == ["en", "fr"]


@pytest.mark.parametrize("doc, problem", [("no separator here", "no ':' on its first line"),
                                          (": text", "an empty label"),
                                          ("two\nlines: text", "no ':' on its first line")])
def test_a_document_without_its_label_is_refused_by_number(doc, problem):
    with pytest.raises(UsageError, match=f"document 2 .*has {problem}"):
        cut_labels(["ok: fine", doc], ":", "x.txt")


def test_a_separator_that_makes_every_line_its_own_label_is_refused():
    with pytest.raises(UsageError, match="look like text; check --label-sep"):
        cut_labels([f"{i}: text" for i in range(500)], ":", "x.txt")


def test_vocabulary_puts_labels_after_the_characters_and_never_in_text():
    v = Vocab(list("ab"), ["x", "y"])
    assert len(v) == 5 and v.text_size == 3 and v.label_id("y") == 4
    assert v.decode([EOS, 3, 1, 4, 2]) == "ab" and v.token(3) == "<label:x>"
    assert v.encode("ba").tolist() == [2, 1]
    assert Vocab.from_record(v.record()).labels == ("x", "y")
    assert "labels" not in Vocab(list("ab")).record()  # an unlabelled checkpoint stays as it was
    with pytest.raises(UsageError, match="not one of the model's labels: x, y"):
        v.label_id("z")
    with pytest.raises(UsageError, match="trained without labels"):
        Vocab(list("ab")).label_id("x")


def test_streams_open_each_document_with_its_label():
    v = Vocab(list("abc"), ["p", "q"])
    assert document_stream(["ab", "c"], v, ["q", "p"]).tolist() == [EOS, 5, 1, 2, EOS, 4, 3, EOS]
    split = split_documents(["abab", "cc"], v, 0.5, labels=["p", "q"])
    assert split.train.tolist() == [EOS, 4, 1, 2, EOS, 5, 3, EOS]
    assert split.val.tolist() == [4, 1, 2, EOS, 5, 3, EOS]  # a held-out tail read as its kind


def test_files_labelled_by_name_stream_from_disk_as_they_read_in_memory(tmp_path):
    texts = {"keats": "a thing of beauty\n" * 30, "poe": "once upon a midnight dreary\n" * 30}
    paths = []
    for name, text in texts.items():
        (tmp_path / f"{name}.txt").write_text(text)
        paths.append(tmp_path / f"{name}.txt")
    data, _ = documents_or_files(paths, DocumentConfig(label_from_file=True), "utf-8", "strict")
    assert data.labels == ("keats", "poe")
    disk = prepare_corpus(paths, tmp_path / "cache", 0.1, labels=list(data.labels))
    memory = corpus_from_docs(Labelled(list(texts.values()), ["keats", "poe"]), None, 0.1, False, 0)
    assert disk.vocab.labels == memory.vocab.labels == ("keats", "poe")
    assert np.array_equal(disk.train, memory.train) and np.array_equal(disk.val, memory.val)
    assert disk.fingerprint == memory.fingerprint != corpus_from_docs(list(texts.values()), None, 0.1, False, 0).fingerprint
    assert disk.label_counts == {"keats": 1, "poe": 1}


@pytest.mark.parametrize("args, message", [
    (["kinds.txt", "--label-sep", ":"], "--label-sep reads a label from each line"),
    (["kinds.txt", "--lines", "--label-sep", ":", "--label-from-file"], "give one of them"),
    (["-", "--lines", "--label-from-file"], "standard input has none"),
    (["kinds.txt", "--lines", "--label-sep", ";"], "document 1 .* has no ';' on its first line"),
])
def test_bad_labelling_is_one_line_exit_2_nothing_written(tmp_path, args, message):
    (tmp_path / "kinds.txt").write_text(kinds_corpus(20))
    r = run("train", *args, "--steps", "5", cwd=tmp_path, input="a\nb\n")
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and re.search(message, r.stderr), r.stderr
    assert not (tmp_path / "checkpoints").exists()


# -- a labelled model ----------------------------------------------------------------------------

def test_info_lists_the_labels_with_their_document_counts(kinds_run):
    r = run("info", "-c", kinds_run, cwd=kinds_run)
    assert r.returncode == 0
    assert "digits (200 documents), letters (400 documents)" in r.stdout.replace("\n", " ").replace("│", "")
    assert "EOS + 18 chars + 2 labels" in r.stdout


@pytest.mark.parametrize("label, alphabet", [("letters", LETTERS), ("digits", DIGITS)])
def test_sample_label_writes_documents_of_that_kind(kinds_run, label, alphabet):
    r = run("sample", "-c", kinds_run, "--label", label, "-n", "20", "-l", "12", "--seed", "1", "--json", "-q",
            cwd=kinds_run)
    assert r.returncode == 0, r.stderr
    samples = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(samples) == 20 and all(s["label"] == label for s in samples)
    made = "".join(s["text"] for s in samples)
    assert sum(c in alphabet for c in made) / len(made) > 0.95, made


def test_without_a_label_kinds_are_drawn_as_the_model_weighs_them(kinds_model):
    model, vocab, _ = kinds_model
    cfg = SampleConfig(num_samples=400, length=12, seed=5)
    got = list(complete_samples(model, vocab, "", cfg))
    share = sum(label == "letters" for _, _, label in got) / len(got)
    with torch.no_grad():
        p = torch.softmax(model(torch.tensor([[EOS]]))[0][0, 0, vocab.text_size :].double(), -1)
    expected = float(p[vocab.labels.index("letters")])  # P(letters | a document starts), among the labels
    assert 0.4 < expected < 0.9 and abs(share - expected) < 4 * (expected * (1 - expected) / len(got)) ** 0.5
    of_its_kind = [sum(c in (LETTERS if label == "letters" else DIGITS) for c in text) > len(text) / 2
                   for text, _, label in got]
    assert sum(of_its_kind) >= 0.95 * len(got)  # each text is of the kind drawn for it (the tiny model errs a little)


def test_a_prime_draws_the_kind_it_belongs_to(kinds_model):
    model, vocab, _ = kinds_model
    got = list(complete_samples(model, vocab, "3141", SampleConfig(num_samples=40, length=8, seed=2)))
    assert {label for _, _, label in got} == {"digits"}


def test_an_unknown_label_is_one_line_listing_the_labels_exit_2(kinds_run, trained_run):
    for command in (["sample"], ["score", "-"], ["eval", "-"]):
        r = run(*command, "-c", kinds_run, "--label", "poems", cwd=kinds_run, input="abc\n")
        assert r.returncode == 2 and r.stdout == "", (command, r.stdout)
        assert r.stderr.strip() == "charrnn: error: --label 'poems' is not one of the model's labels: digits, letters"
    r = run("sample", "-c", trained_run / "best.pt", "--label", "poems", cwd=kinds_run)
    assert r.returncode == 2 and "trained without labels; leave --label out" in r.stderr


def test_score_names_each_documents_likeliest_kind(kinds_run):
    r = run("score", "-c", kinds_run, cwd=kinds_run, input="abcabc\n0123\n")
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert [(row[1], row[2]) for row in rows] == [("letters", "abcabc"), ("digits", "0123")]
    as_kind = {}
    for label in ("digits", "letters"):
        r = run("score", "-c", kinds_run, "--json", "--label", label, cwd=kinds_run, input="abcabc\n0123\n")
        as_kind[label] = [json.loads(line) for line in r.stdout.splitlines()]
    assert as_kind["digits"][0]["bpc"] > as_kind["letters"][0]["bpc"] and "label" not in as_kind["digits"][0]
    assert as_kind["letters"][1]["bpc"] > as_kind["digits"][1]["bpc"]


def test_unlabelled_score_is_the_mixture_over_kinds(kinds_model):
    model, vocab, _ = kinds_model
    docs = ["abcabc", "0123", "a1"]
    mixed = score_documents(model, vocab, docs)
    by_kind = [score_documents(model, vocab, docs, label=name) for name in vocab.labels]
    with torch.no_grad():
        prior = torch.log_softmax(model(torch.tensor([[EOS]]))[0][0, 0].double(), -1)
    for i, kind in enumerate(score_kinds(model, vocab, docs)):
        joint = [float(prior[vocab.label_id(name)]) - by_kind[j][i].nll for j, name in enumerate(vocab.labels)]
        assert mixed[i].nll == pytest.approx(-float(torch.logsumexp(torch.tensor(joint), 0)), rel=1e-4)
        assert kind[1] == vocab.labels[int(np.argmax(joint))]


def test_eval_needs_a_label_and_scores_characters_not_labels(kinds_run, kinds_model):
    (kinds_run / "digits.txt").write_text("0123\n98765\n")
    r = run("eval", "-c", kinds_run, "digits.txt", cwd=kinds_run)
    assert r.returncode == 2 and "give --label NAME" in r.stderr
    r = run("eval", "-c", kinds_run, "digits.txt", "--label", "digits", "--json", cwd=kinds_run)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[0])["scored"] == 11  # 9 characters and 2 EOS: the labels are given
    model, vocab, _ = kinds_model
    ids = document_stream(["0123", "98765"], vocab, ["digits", "digits"])
    assert evaluate(model, ids, scored_below=vocab.text_size).count == 11 and evaluate(model, ids).count == 13


def test_inspect_reads_the_label_given_as_eval_does(kinds_run):
    (kinds_run / "one.txt").write_text("0123\n")
    r = run("eval", "-c", kinds_run, "one.txt", "--label", "digits", "--json", cwd=kinds_run)
    assert r.returncode == 0, r.stderr
    scored = json.loads(r.stdout.splitlines()[0])
    r = run("inspect", "-c", kinds_run, "--label", "digits", "--json", cwd=kinds_run, input="0123")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["char"] for row in rows] == ["0", "1", "2", "3", None]
    assert all(tok in DIGITS for tok, _ in rows[0]["top"][:3])  # after the label the model expects its kind
    nats = sum(row["bits"] for row in rows) * math.log(2) / len(rows)
    assert len(rows) == scored["scored"] and nats == pytest.approx(scored["nats_per_char"], abs=1e-3)
    r = run("inspect", "-c", kinds_run, "--json", cwd=kinds_run, input="0123")  # no label: its first guess is the kind
    assert {tok for tok, _ in json.loads(r.stdout.splitlines()[0])["top"][:2]} == {"<label:digits>", "<label:letters>"}
    r = run("inspect", "-c", kinds_run, "--label", "poems", cwd=kinds_run, input="0123")
    assert r.returncode == 2 and r.stdout == "" and "is not one of the model's labels: digits, letters" in r.stderr


def test_beam_search_writes_the_asked_kind(kinds_run):
    r = run("sample", "-c", kinds_run, "--beam", "3", "--label", "digits", "-l", "10", "--json", "-q", cwd=kinds_run)
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout.splitlines()[0])
    assert found["label"] == "digits" and found["text"] and set(found["text"]) <= set(DIGITS)


def test_validation_scores_characters_only(kinds_run):
    ckpt = load_checkpoint(kinds_run / "best.pt")
    assert ckpt["labels"] == ["digits", "letters"] and ckpt["corpus"]["label_counts"] == {"digits": 200, "letters": 400}
    assert ckpt["metrics"][-1]["val_loss"] < 2.2  # ln 8 = 2.08 per letter; labels would add their own cost


# -- --init with labels --------------------------------------------------------------------------

def test_init_adds_labels_and_characters_keeping_what_the_base_learned(kinds_run, tmp_path):
    base = load_base(str(kinds_run / "best.pt"))
    grown = Vocab(base.vocab.chars + ("X", "Y"), base.vocab.labels + ("shouting",))
    w = grown_weights(base, grown)
    old, new = base.vocab, grown
    for name in old.labels:  # a label's rows move up past the new characters, whole
        assert torch.equal(w["embed.weight"][new.label_id(name)], base.weights["embed.weight"][old.label_id(name)])
        assert torch.equal(w["head.weight"][new.label_id(name)], base.weights["head.weight"][old.label_id(name)])
    for i in range(old.text_size):  # EOS and the old characters keep theirs
        assert torch.equal(w["head.bias"][i], base.weights["head.bias"][i])
    (tmp_path / "more.txt").write_text("shouting\tXYXY\nshouting\tYYX\n" * 40 + kinds_corpus(40))
    r = run("train", "more.txt", "--lines", "--label-sep", "\\t", "--init", kinds_run / "best.pt", "--steps", "30",
            "--sample-length", "0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 new character(s) added: 'XY'; 1 new label(s) added: shouting" in r.stderr
    r = run("sample", "-c", tmp_path / "checkpoints" / "more", "--label", "shouting", "-n", "5", "-l", "8", "--seed", "1",
            cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip()


def test_init_from_a_labelled_model_needs_labelled_documents(kinds_run, tmp_path):
    (tmp_path / "plain.txt").write_text("abc\n" * 50)
    r = run("train", "plain.txt", "--lines", "--init", kinds_run / "best.pt", "--steps", "5", cwd=tmp_path)
    assert r.returncode == 2 and "label its documents (--label-sep or --label-from-file)" in r.stderr


# -- serve ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kinds_server(kinds_run):
    s = Server(kinds_run / "best.pt", "--threads", "1")
    yield s
    s.stop()


def test_serve_takes_a_label_and_writes_what_sample_writes(kinds_server, kinds_run):
    for label in ("digits", None):  # given, and drawn by the request's own generator
        body = {"n": 6, "length": 10, "seed": 4, **({"label": label} if label else {})}
        done = [r for _, r in stream(kinds_server, body)][-1]
        r = run("sample", "-c", kinds_run, "-n", "6", "-l", "10", "--seed", "4", "--json", "-q",
                *(["--label", label] if label else []), cwd=kinds_run)
        local = [json.loads(line) for line in r.stdout.splitlines()]
        assert [(s["text"], s["label"]) for s in done["samples"]] == [(s["text"], s["label"]) for s in local]
        assert {s["label"] for s in local} == ({label} if label else {"digits", "letters"})


def test_openai_completions_take_a_label_in_extra_body(kinds_server, kinds_run):
    openai = pytest.importorskip("openai", reason="the openai package is not installed (pip install -e '.[dev]')")
    client = openai_client(kinds_server)
    r = client.completions.create(model="x", prompt="", n=3, max_tokens=10, seed=4, extra_body={"label": "digits"})
    local = run("sample", "-c", kinds_run, "-n", "3", "-l", "10", "--seed", "4", "--label", "digits", "--json", "-q",
                cwd=kinds_run)
    texts = [json.loads(line)["text"] for line in local.stdout.splitlines()]
    assert [c.text for c in r.choices] == texts and "".join(texts)
    letters = client.completions.create(model="x", prompt="", n=3, max_tokens=10, seed=4, extra_body={"label": "letters"})
    share = [sum(ch in DIGITS for ch in text) / max(1, len(text)) for text in ("".join(texts),
                                                                               "".join(c.text for c in letters.choices))]
    assert share[0] > 0.8 > 0.2 > share[1]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="x", messages=[{"role": "user", "content": "0"}], extra_body={"label": "poems"})
    assert e.value.body["param"] == "label" and "digits, letters" in e.value.body["message"]


def test_serve_refuses_an_unknown_label_naming_the_field(kinds_server):
    status, body = kinds_server.post("/v1/sample", {"label": "poems"})
    assert status == 400 and body["field"] == "label" and "digits, letters" in body["error"]
    status, body = kinds_server.post("/v1/score", {"texts": ["0123"], "label": "poems"})
    assert status == 400 and body["field"] == "label"


def test_serve_scores_and_info_know_the_labels(kinds_server):
    info = kinds_server.get("/v1/info")
    assert info["labels"] == ["digits", "letters"] and info["label_counts"] == {"digits": 200, "letters": 400}
    scores = kinds_server.post("/v1/score", {"texts": ["abab", "0101"]})[1]["scores"]
    assert [s["label"] for s in scores] == ["letters", "digits"]
    as_letters = kinds_server.post("/v1/score", {"texts": ["0101"], "label": "letters"})[1]["scores"][0]
    assert as_letters["bpc"] > scores[1]["bpc"]


# -- the model out of charrnn --------------------------------------------------------------------

def test_the_web_page_writes_the_asked_kind_as_sample_does(kinds_run, tmp_path):
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the browser test in test_page.py checks the page itself)")
    assert run("export", "-c", kinds_run, "--web", tmp_path / "site", "-q", cwd=tmp_path).returncode == 0
    asks = [{"label": "digits", "greedy": True, "length": 20}, {"prime": "31", "greedy": True, "length": 20},
            {"prime": "ab", "greedy": True, "length": 20}, {"label": "poems"}]
    (tmp_path / "ask.js").write_text(
        "globalThis.window = globalThis; require('./site/model.js'); require('./site/local.js');\n"
        f"(async () => {{ for (const body of {json.dumps(asks)}) {{\n"
        "  const r = await window.fetch('/v1/sample', { method: 'POST', body: JSON.stringify(body) });\n"
        "  const lines = (await r.text()).trim().split('\\n').map((l) => JSON.parse(l));\n"
        "  const text = lines.filter((l) => l.type === 'text').map((l) => l.text).join('');\n"
        "  console.log(JSON.stringify({ status: r.status, text, last: lines[lines.length - 1] }));\n"
        "} })();\n", encoding="utf-8")
    ran = subprocess.run([node, "ask.js"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    answers = [json.loads(line) for line in ran.stdout.splitlines()]
    for body, answer in zip(asks[:3], answers, strict=False):
        r = run("sample", "-c", kinds_run, "--greedy", "-l", "20", "--json", "-q", "--prime", body.get("prime", ""),
                *(["--label", body["label"]] if "label" in body else []), cwd=tmp_path)
        local = json.loads(r.stdout)
        assert answer["status"] == 200 and body.get("prime", "") + answer["text"] == local["text"]
        assert answer["last"]["samples"][0]["label"] == local["label"]
    assert answers[1]["last"]["samples"][0]["label"] == "digits" and answers[2]["last"]["samples"][0]["label"] == "letters"
    assert answers[3]["status"] == 400 and answers[3]["last"]["field"] == "label"


def test_onnx_metadata_names_the_labels(kinds_run, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    r = run("export", "-c", kinds_run, "kinds.onnx", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    meta = onnxruntime.InferenceSession(str(tmp_path / "kinds.onnx")).get_modelmeta().custom_metadata_map
    assert json.loads(meta["charrnn.labels"]) == ["digits", "letters"]
    assert len(json.loads(meta["charrnn.vocab"])) + 2 == json.loads(meta["charrnn.info"])["vocab_size"]


@pytest.mark.skipif(not (test_page.CHROMIUM and test_page.DRIVER), reason="no headless browser here (chromium and "
                    "chromedriver); make test-browser installs them")
def test_the_page_offers_the_kinds_and_writes_the_chosen_one(browser, kinds_server):  # noqa: F811
    from selenium.webdriver.common.by import By

    test_page.open_page(browser, kinds_server, "1", "document.getElementById('length').value = 20;"
                        "document.getElementById('stop').value = ''; document.getElementById('seed').value = 3;")
    menu = browser.find_element(By.ID, "label")
    assert browser.find_element(By.ID, "kind").is_displayed()
    assert [o.get_attribute("value") for o in menu.find_elements(By.TAG_NAME, "option")] == ["", "digits", "letters"]
    browser.execute_script("const m = document.getElementById('label'); m.value = 'letters';"
                           "m.dispatchEvent(new Event('change'));")  # a new kind: a new suggestion
    test_page.until_done(browser)
    asked = kinds_server.post("/v1/sample", {"prime": "1", "length": 20, "temperature": 0.8, "seed": 3, "label": "letters",
                                             "stream": False})[1]
    assert test_page.ghost_text(browser) == asked["samples"][0]["text"] and asked["samples"][0]["label"] == "letters"
