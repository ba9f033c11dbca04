import random

import numpy as np
import pytest

from charrnn.errors import UsageError
from charrnn.text.data import EOS, Vocab, fingerprint, read_text, split_documents

SAMPLES = [
    "hello, world",
    "Zoë says “ça va?”\n",
    "naïve café — e\u0301 (combining acute) and a\u0308",
    "astral: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀🎉 𓀀",
    "windows\r\nline\r\nendings\ttabs",
    "中文字符与日本語のテキスト",
    "\u200b zero width \ufeff bom-like",
]


def random_unicode(rng: random.Random, n: int) -> str:
    out = []
    while len(out) < n:
        cp = rng.choice([rng.randrange(1, 0x80), rng.randrange(0x80, 0xD800), rng.randrange(0xE000, 0x110000)])
        out.append(chr(cp))
    return "".join(out)


@pytest.mark.parametrize("text", SAMPLES)
def test_vocab_round_trip(text):
    v = Vocab.from_texts([text])
    ids = v.encode(text)
    assert ids.dtype == np.int64 and len(ids) == len(text)
    assert EOS not in ids
    assert v.decode(ids) == text
    assert len(v) == len(set(text)) + 1


def test_vocab_round_trip_random_code_points():
    rng = random.Random(7)
    for _ in range(20):
        text = random_unicode(rng, rng.randrange(1, 400))
        v = Vocab.from_texts([text])
        assert v.decode(v.encode(text)) == text


def test_decode_skips_eos_and_vocab_rebuilds_from_its_chars():
    v = Vocab.from_texts(["abc"])
    assert v.decode([EOS, *v.encode("cab"), EOS]) == "cab"
    assert Vocab(list(v.chars)).encode("abc").tolist() == v.encode("abc").tolist()


def test_encode_unknown_character_names_it():
    v = Vocab.from_texts(["abc"])
    with pytest.raises(UsageError, match=r"'z' \(U\+007A\)"):
        v.encode("abz")
    assert v.missing("xaby") == ["x", "y"]


def test_split_holds_out_tail_of_each_document():
    docs = ["a" * 90 + "b" * 10, "c" * 45 + "d" * 5]
    v = Vocab.from_texts(docs)
    sp = split_documents(docs, v, 0.1)
    train, val = v.decode(sp.train), v.decode(sp.val)
    assert train == "a" * 90 + "c" * 45
    assert val == "b" * 10 + "d" * 5
    # EOS opens every training document and closes every validation tail.
    assert sp.train.tolist().count(EOS) == 3 and sp.train[0] == EOS
    assert sp.val.tolist().count(EOS) == 2 and sp.val[-1] == EOS


def test_val_frac_leaving_no_validation_text_is_refused():
    v = Vocab.from_texts(["abcdef"])
    with pytest.raises(UsageError, match="no validation text"):
        split_documents(["abcdef"], v, 0.01)


def test_fingerprint_depends_on_document_boundaries():
    assert fingerprint(["ab", "c"]) != fingerprint(["a", "bc"])
    assert fingerprint(["ab", "c"]) == fingerprint(["ab", "c"])


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"  \n\n", "is empty"),
        (b"abc\x00def", "NUL bytes"),
        (b"abc\xff\xfedef", "invalid UTF-8 at byte 3"),
    ],
)
def test_read_text_rejects_bad_files(tmp_path, content, message):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        read_text(p)


def test_read_text_missing_and_directory(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        read_text(tmp_path / "nope.txt")
    with pytest.raises(UsageError, match="is a directory"):
        read_text(tmp_path)


def test_read_text_normalises_crlf_and_bom(tmp_path):
    p = tmp_path / "w.txt"
    p.write_bytes("\ufeffone\r\ntwo\r\n".encode("utf-8"))
    assert read_text(p) == "one\ntwo\n"


def test_split_text_into_documents():
    from charrnn.text.data import split_text

    assert split_text("a\n\n  \nb c\r\n", lines=True) == ["a", "b c\r"]
    assert split_text("one\nfortune\n%\ntwo\n%\n\n%\nthree", doc_sep="%") == ["one\nfortune", "two", "three"]
    assert split_text("p1\nl2\n\n \np2\n", doc_sep="") == ["p1\nl2", "p2"]
    assert split_text("whole\n\ntext") == ["whole\n\ntext"]


def test_whole_document_holdout_is_seeded_and_disjoint():
    docs = [f"name{i:03d}" for i in range(200)]
    v = Vocab.from_texts(docs)
    a = split_documents(docs, v, 0.1, whole=True, seed=3)
    b = split_documents(docs, v, 0.1, whole=True, seed=3)
    c = split_documents(docs, v, 0.1, whole=True, seed=4)
    assert np.array_equal(a.val, b.val) and not np.array_equal(a.val, c.val)
    train_docs = _docs(v, a.train)
    val_docs = _docs(v, a.val)
    assert len(val_docs) == 20 and not (train_docs & val_docs)
    assert train_docs | val_docs == set(docs)
    # The validation stream opens with EOS, so its first document is scored from a document start.
    assert a.val[0] == EOS and a.val[-1] == EOS
    with pytest.raises(UsageError, match="at least 2 documents"):
        split_documents(["only one"], Vocab.from_texts(["only one"]), 0.1, whole=True)


def _docs(v, ids):
    return {d for d in "".join("\n" if i == EOS else v.decode([i]) for i in ids).split("\n") if d}


def test_stdin_is_read_like_a_file():
    import io

    assert read_text("-", stdin=io.BytesIO(b"hi\r\nthere\n")) == "hi\nthere\n"
    with pytest.raises(UsageError, match="standard input: is empty"):
        read_text("-", stdin=io.BytesIO(b""))
