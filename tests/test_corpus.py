"""Corpora streamed from disk: the same ids as in memory, cached per run, read through memmap."""

import os
import subprocess

import numpy as np
import pytest
from conftest import TINY_MODEL, tiny_config

from charrnn.errors import CharrnnError, UsageError
from charrnn.text import corpus as corpus_mod
from charrnn.text.corpus import TextFiles, corpus_from_docs, prepare_corpus, token_dtype
from charrnn.text.data import read_text
from charrnn.training.train import train

TEXTS = {
    "a.txt": "\ufeffFirst line\r\nsecond\r\n\r\nthird 𝄞 ü e\u0301\r\n" * 40,
    "b.txt": "Another document.\nWith a tail\r\n" * 30 + "end",
}


@pytest.fixture
def files(tmp_path):
    paths = []
    for name, text in TEXTS.items():
        p = tmp_path / name
        p.write_bytes(text.encode("utf-8"))
        paths.append(p)
    return paths


@pytest.fixture
def small_chunks(monkeypatch):
    # 7 bytes: chunk edges fall inside multi-byte characters, between CR and LF, and inside the BOM.
    monkeypatch.setattr(corpus_mod, "CHUNK_BYTES", 7)


def test_streamed_ids_equal_the_in_memory_ones(files, tmp_path, small_chunks):
    streamed = prepare_corpus(files, tmp_path / "cache", 0.1)
    memory = corpus_from_docs([read_text(p) for p in files], None, 0.1, whole=False, seed=0)
    assert isinstance(streamed.train, np.memmap) and streamed.train.dtype == np.uint8
    assert streamed.vocab.chars == memory.vocab.chars
    np.testing.assert_array_equal(streamed.train, memory.train)
    np.testing.assert_array_equal(streamed.val, memory.val)
    assert streamed.fingerprint == memory.fingerprint
    np.testing.assert_array_equal(streamed.doc_hashes, memory.doc_hashes)
    assert (streamed.chars, streamed.documents) == (memory.chars, memory.documents)


def test_token_width_follows_the_vocabulary(tmp_path):
    assert token_dtype(256) == np.uint8 and token_dtype(257) == np.uint16 and token_dtype(70_000) == np.uint32
    p = tmp_path / "zh.txt"
    p.write_text("".join(chr(0x4E00 + i) for i in range(400)) * 3, encoding="utf-8")
    c = prepare_corpus([p], tmp_path / "cache", 0.1)
    assert c.train.dtype == np.uint16 and c.vocab.decode(c.train[1:11]) == "".join(chr(0x4E00 + i) for i in range(10))


def test_cache_is_reused_untouched_rehashed_when_touched_and_rebuilt_when_changed(files, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = prepare_corpus(files, cache, 0.1)
    bin_stat = os.stat(cache / "train.bin")

    real_scan = corpus_mod._scan
    monkeypatch.setattr(corpus_mod, "_scan", lambda *a: pytest.fail("an untouched corpus was read again"))
    again = prepare_corpus(files, cache, 0.1)
    np.testing.assert_array_equal(again.train, first.train)

    monkeypatch.setattr(corpus_mod, "_scan", real_scan)
    os.utime(files[0], ns=(1, 1))  # touched, same content: hashed, not encoded again
    prepare_corpus(files, cache, 0.1)
    assert os.stat(cache / "train.bin").st_ino == bin_stat.st_ino

    files[1].write_text("Something else entirely.\n" * 20, encoding="utf-8")
    changed = prepare_corpus(files, cache, 0.1)
    assert changed.fingerprint != first.fingerprint
    assert os.stat(cache / "train.bin").st_ino != bin_stat.st_ino
    assert "Something else" in changed.vocab.decode(changed.train[-600:])


@pytest.mark.parametrize("data, message", [
    (b"good text then \xff bad", "invalid UTF-8 at byte 15"),
    (b"text\x00with NUL", "NUL bytes"),
    (b" \n\t \n", "is empty"),
])
def test_streamed_bad_input_names_the_problem(tmp_path, small_chunks, data, message):
    p = tmp_path / "bad.txt"
    p.write_bytes(data)
    with pytest.raises(UsageError, match=message):
        prepare_corpus([p], tmp_path / "cache", 0.1)
    assert not (tmp_path / "cache").exists()


def test_training_on_streamed_files_equals_training_in_memory(files, tmp_path):
    cfg = tiny_config(steps=12, eval_every=6)
    on_disk = train(TextFiles(tuple(files)), TINY_MODEL, cfg, tmp_path / "disk", sample_every_eval=0)
    in_memory = train([read_text(p) for p in files], TINY_MODEL, cfg, tmp_path / "memory", sample_every_eval=0)
    assert [m["val_loss"] for m in on_disk.metrics] == [m["val_loss"] for m in in_memory.metrics]
    assert (tmp_path / "disk" / "corpus" / "train.bin").exists()


def test_a_full_disk_while_encoding_is_one_error_and_leaves_nothing_half_written(files, tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(corpus_mod.os, "fsync", no_space)
    with pytest.raises(CharrnnError, match="No space left on device"):
        prepare_corpus(files, tmp_path / "cache", 0.1)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == []


def test_leftovers_of_a_killed_encoder_are_removed(files, tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"train.bin.tmp{dead.pid}").write_bytes(b"half")
    prepare_corpus(files, cache, 0.1)
    assert sorted(p.name for p in cache.iterdir()) == ["corpus.json", "train.bin", "val.bin"]
