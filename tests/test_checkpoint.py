import os
import pickle
import zipfile

import pytest
import torch

from charrnn.api.loading import load_model
from charrnn.errors import UsageError
from charrnn.model.checkpoint import FORMAT_VERSION, load_checkpoint, resolve_checkpoint, save_checkpoint


def test_save_load_gives_identical_logits(trained_run, tmp_path):
    model, vocab, ckpt = load_model(trained_run / "best.pt")
    copy = tmp_path / "copy.pt"
    save_checkpoint({k: v for k, v in ckpt.items() if k not in ("format", "version")}, copy)
    again, vocab2, _ = load_model(copy)
    x = torch.as_tensor(vocab.encode("To be, or not to be"))[None]
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], again(x)[0], rtol=0, atol=0)
    assert vocab2.chars == vocab.chars
    assert [p.name for p in tmp_path.iterdir()] == ["copy.pt"]  # no temp file left behind


def test_checkpoint_is_self_contained(trained_run):
    ckpt = load_checkpoint(trained_run / "last.pt")
    for key in ("model", "optimizer", "vocab", "model_config", "train_config", "progress", "rng", "corpus", "metrics"):
        assert key in ckpt, key
    assert ckpt["version"] == FORMAT_VERSION
    assert ckpt["progress"]["step"] == 150


class Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "charrnn", "version": 1, "x": Payload(str(marker))}, evil)
    with pytest.raises(UsageError, match="refused"):
        load_checkpoint(evil)
    assert not marker.exists()
    # A plain pickle (not torch's zip format) with the same payload.
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Payload(str(marker))))
    with pytest.raises(UsageError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_truncated_foreign_and_newer_files(trained_run, tmp_path):
    good = (trained_run / "best.pt").read_bytes()
    cases = {
        "truncated.pt": good[: len(good) // 2],
        "empty.pt": b"",
        "text.pt": b"hello, I am not a checkpoint\n",
        "garbage.pt": os.urandom(4096),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UsageError, match="not a readable checkpoint|not a charrnn"):
            load_checkpoint(tmp_path / name)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(UsageError, match="not a charrnn checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save({"format": "charrnn", "version": FORMAT_VERSION + 1}, tmp_path / "newer.pt")
    with pytest.raises(UsageError, match="newer"):
        load_checkpoint(tmp_path / "newer.pt")
    with pytest.raises(UsageError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    assert zipfile.is_zipfile(trained_run / "best.pt")


def test_resolve_checkpoint_picks_newest_run(tmp_path):
    with pytest.raises(UsageError, match="no trained model"):
        resolve_checkpoint(None, tmp_path)
    for name in ("old", "new"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "best.pt").write_bytes(b"x")
    os.utime(tmp_path / "old" / "best.pt", (1, 1))
    assert resolve_checkpoint(None, tmp_path) == tmp_path / "new" / "best.pt"
    assert resolve_checkpoint(tmp_path / "old") == tmp_path / "old" / "best.pt"
