"""Property tests: arbitrary text, primes and bytes never crash charrnn."""

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from charrnn.cli.app import app
from charrnn.errors import UsageError
from charrnn.model.checkpoint import load_checkpoint, save_checkpoint
from charrnn.text.data import Vocab, decode_text
from charrnn.training.config import TrainConfig
from charrnn.training.train import train

# Any code point but surrogates and NUL: astral planes, combining marks, CR/LF all included.
unicode_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=200)


@settings(max_examples=60, deadline=None)
@given(unicode_text)
def test_any_text_round_trips_through_vocab_and_checkpoint(text):
    vocab = Vocab.from_texts([text])
    assert vocab.decode(vocab.encode(text)) == text
    with tempfile.TemporaryDirectory() as d:
        save_checkpoint({"vocab": list(vocab.chars)}, Path(d) / "v.pt")
        again = Vocab(load_checkpoint(Path(d) / "v.pt")["vocab"])
    assert again.chars == vocab.chars
    assert again.decode(again.encode(text)) == text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_prime_the_cli_accepts_produces_output(trained_run, data):
    from charrnn.api.loading import load_model

    _, vocab, _ = load_model(trained_run / "best.pt")
    prime = data.draw(st.text(st.sampled_from(vocab.chars), max_size=40))
    if prime == "-":  # '-' means: read the prime from stdin
        prime = "--"
    r = CliRunner().invoke(app, ["sample", "-c", str(trained_run), f"--prime={prime}", "-l", "5", "--seed", "1", "-q"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(prime) and r.stdout.endswith("\n")
    assert len(r.stdout) > len(prime)


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_are_trained_on_or_rejected_cleanly(data):
    try:
        text = decode_text(data, "bytes")
    except UsageError:
        return
    with tempfile.TemporaryDirectory() as d:
        cfg = TrainConfig(steps=2, seq_len=16, batch_size=2, val_frac=0.0, device="cpu", warmup=1)
        model = {"layers": 1, "hidden": 8, "embed": 4, "dropout": 0.0}
        try:
            result = train([text], model, cfg, d, sample_every_eval=5)
        except UsageError:
            return
        assert result.progress.step == 2
        assert load_checkpoint(Path(d) / "last.pt")["progress"]["step"] == 2
