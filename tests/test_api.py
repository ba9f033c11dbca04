"""The Python API as its users call it: `import charrnn`, load, write, score, train; the same text as the command line
for the same settings, errors as CharrnnError with the command line's message, nothing on stdout, and the keywords
and types made from the settings' one declaration."""

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from inprocess import invoke

import charrnn
from charrnn.api.keywords import OPTIONS, options_source

DOCS = ["the cat sat on the mat. " * 20, "a dog ran in the fog. " * 20, "one fish, two fish. " * 20]
TINY = dict(hidden=32, embed=8, eval_every=20, seed=1, progress=False, plot=False, sample_length=0)


@pytest.fixture(scope="module")
def base():
    return charrnn.load("base", device="cpu")


@pytest.fixture(scope="module")
def small(trained_run):
    return charrnn.load(trained_run, device="cpu")


@pytest.mark.parametrize("code, api", [("import charrnn", False),
                                       ("import charrnn; charrnn.load, charrnn.train, charrnn.Model", True)])
def test_import_charrnn_and_its_api_without_torch(code, api):
    report = "import sys; print(json.dumps([sorted(sys.modules), dir(charrnn)]))"
    ran = subprocess.run([sys.executable, "-c", f"import json; {code}; {report}"], capture_output=True, text=True,
                         timeout=60)
    assert ran.returncode == 0, ran.stderr
    loaded, names = json.loads(ran.stdout)
    assert ("charrnn.api" in loaded) == api  # the API's modules wait for their first use
    assert not set(loaded) & {"torch", "numpy", "typer", "rich"}, set(loaded) & {"torch", "numpy", "typer", "rich"}
    assert set(charrnn.__all__) <= set(names)
    assert issubclass(charrnn.CharrnnError, ValueError) and charrnn.Sample is charrnn.api.Sample


def test_generate_writes_what_charrnn_sample_writes_after_its_prime(base, tmp_path):
    text = base.generate("ROMEO.", length=200, seed=1)
    cli = invoke("sample", "-c", "base", "--prime", "ROMEO.", "--length", "200", "--seed", "1", "-q", cwd=tmp_path)
    assert cli.returncode == 0 and cli.stdout == "ROMEO." + text + "\n" and len(text) > 100
    hot = base.generate("JULIET.", length=150, seed=4, temperature=0.7, top_k=12, top_p=0.9, stop=["\n\n"])
    cli = invoke("sample", "-c", "base", "--prime", "JULIET.", "--length", "150", "--seed", "4", "-t", "0.7",
                 "--top-k", "12", "--top-p", "0.9", "--stop", "\\n\\n", "-q", cwd=tmp_path)
    assert cli.stdout == "JULIET." + hot + "\n"


def test_a_stream_joined_is_generate_and_says_why_it_ended(base):
    settings = dict(length=300, seed=7, temperature=0.9, stop="\n\n")
    stream = base.stream("ROMEO.", **settings)
    assert stream.ended is None
    pieces = list(stream)
    assert "".join(pieces) == base.generate("ROMEO.", **settings) and len(pieces) > 1
    assert stream.ended in ("stop", "length", "eos") and stream.seed == 7 and stream.prime == "ROMEO."


def test_streams_and_samples_are_what_sample_prints(base, tmp_path):
    streams = base.streams("KING", n=3, length=40, seed=11)
    texts = [(s.text(), s.ended) for s in streams]
    cli = invoke("sample", "-c", "base", "--prime", "KING", "-n", "3", "--length", "40", "--seed", "11", "--json", "-q",
                 cwd=tmp_path)
    records = [json.loads(line) for line in cli.stdout.splitlines()]
    assert [(r["text"], r["ended"], r["seed"]) for r in records] == [("KING" + t, e, 11) for t, e in texts]
    samples = base.samples("KING", n=3, length=40, seed=11)
    assert [(s.prime + s.text, s.ended, s.seed) for s in samples] == [(r["text"], r["ended"], 11) for r in records]
    assert all(isinstance(s, charrnn.Sample) and s.logprob is None for s in samples)


def test_beam_search_gives_the_likeliest_with_their_log_probabilities(base, tmp_path):
    found = base.samples("ROMEO.", n=2, beam=3, length=30)
    cli = invoke("sample", "-c", "base", "--prime", "ROMEO.", "-n", "2", "--beam", "3", "--length", "30", "--json", "-q",
                 cwd=tmp_path)
    records = [json.loads(line) for line in cli.stdout.splitlines()]
    assert [("ROMEO." + s.text, round(s.logprob, 6)) for s in found] == [(r["text"], r["logprob"]) for r in records]
    assert found[0].logprob >= found[1].logprob and found[0].seed is None
    assert base.generate("ROMEO.", beam=3, length=30) == found[0].text


def test_unique_and_novel_samples_come_one_at_a_time(small):
    drawn = small.iter_samples(n=4, length=12, seed=2, unique=True)
    first = next(drawn)
    assert isinstance(first, charrnn.Sample) and len([first, *drawn]) == 4
    texts = [s.text for s in small.samples(n=6, length=3, seed=2, unique=True)]
    assert len(set(texts)) == len(texts)


def test_scores_are_what_charrnn_score_prints(small, tmp_path):
    docs = ["ROMEO. What light", "KING. Speak", "zzz \u20ac"]
    (tmp_path / "docs.txt").write_text("\n".join(docs) + "\n", encoding="utf-8")
    cli = invoke("score", "docs.txt", "-c", str(small.path), "--json", "--dynamic", cwd=tmp_path)
    records = [json.loads(line) for line in cli.stdout.splitlines()]
    scores = small.scores(docs, dynamic=True)
    assert [dict(s.record(), dynamic_bpc=None if s.dynamic_bpc is None else round(s.dynamic_bpc, 5)) for s in scores] \
        == records
    assert scores[2].nats == math.inf and scores[2].unknown == ("\u20ac",) and scores[2].logprob is None
    one, many = small.score(docs[0]), small.score(docs)
    assert one == pytest.approx(scores[0].nats) and many[:2] == pytest.approx([s.nats for s in scores[:2]])
    assert many[2] == math.inf and isinstance(one, float)


def test_evaluate_is_what_charrnn_eval_prints(small, tmp_path, corpus_text, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text(corpus_text[-3000:], encoding="utf-8")
    (tmp_path / "b.txt").write_text(corpus_text[-6000:-3000], encoding="utf-8")
    cli = invoke("eval", "a.txt", "b.txt", "-c", str(small.path), "--json", "--device", "cpu", cwd=tmp_path)
    scores = small.evaluate(["a.txt", Path("b.txt")])
    assert [s.record() for s in scores] == [json.loads(line) for line in cli.stdout.splitlines()]
    assert [s.name for s in scores][-1] == "(all)" and scores[0].bpc == pytest.approx(scores[0].nats / math.log(2))


def test_adapt_learns_from_a_text_and_leaves_the_model_and_its_file_alone(small, corpus_text):
    before = hashlib.sha256(small.path.read_bytes()).hexdigest()
    weights = {k: v.clone() for k, v in small.network.state_dict().items()}
    text = corpus_text[:4000]
    poet = small.adapt(text, dynamic_lr=1e-3)
    assert isinstance(poet, charrnn.Model) and poet.network is not small.network
    assert poet.score(text[:500]) < small.score(text[:500])
    assert all(torch.equal(v, small.network.state_dict()[k]) for k, v in weights.items())
    assert hashlib.sha256(small.path.read_bytes()).hexdigest() == before
    with pytest.raises(charrnn.CharrnnError, match="not in the model's vocabulary"):
        small.adapt("\u20ac" * 10)


def test_a_model_describes_itself(base, small):
    assert base.path.name == "base.pt" and "lstm" in base.info["model"] and base.info["parameters"]
    assert "R" in base.vocab and base.labels == () and base.device == "cpu"
    assert set(small.vocab) <= set(base.vocab) | set(small.vocab) and "charrnn.Model" in repr(small)


def test_export_through_the_model(small, tmp_path):
    onnx = small.export_onnx(tmp_path / "m.onnx")
    assert onnx.is_file() and onnx.stat().st_size > 10_000
    page = small.export_web(tmp_path / "site")
    assert page.name == "index.html" and page.is_file()
    with pytest.raises(charrnn.CharrnnError, match=r"\.onnx"):
        small.export_onnx(tmp_path / "m.txt")


@pytest.mark.parametrize("call, message", [
    (lambda m: m.generate(temperature=0), "--temperature must be a number > 0"),
    (lambda m: m.generate(temprature=0.5), "unknown keyword 'temprature'"),
    (lambda m: m.generate(length="10"), "length='10' is not a whole number"),
    (lambda m: m.generate("\u20ac"), "--prime has characters not in the model's vocabulary"),
    (lambda m: m.stream(beam=2), "use samples(beam=K)"),
    (lambda m: m.samples(n=2, beam=3, novel=True), "--novel does not apply"),
    (lambda m: m.generate(label="poems"), "label"),
    (lambda m: m.scores(["a"], dynamic=True, dynamic_rule="adam"), "not known"),
    (lambda m: m.score([b"bytes"]), "must be strings"),
])
def test_bad_calls_raise_one_line_errors_and_write_nothing(base, call, message, capfd):
    with pytest.raises(charrnn.CharrnnError) as raised:
        call(base)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_training_from_strings_in_memory(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    heard = []
    run = charrnn.train(DOCS, steps=40, on_eval=heard.append, **TINY)
    assert isinstance(run, charrnn.Run) and run.ended == "budget" and run.steps == 40
    assert run.out == Path("checkpoints/documents") and (tmp_path / run.out / "best.pt").is_file()
    assert [e.step for e in heard] == [20, 40] and [m["step"] for m in run.metrics] == [20, 40]
    assert run.best_val == pytest.approx(min(m["val_loss"] for m in run.metrics), abs=1e-4)
    assert math.isfinite(run.best_val_bpc) and heard[-1].train_bpc > 0
    text = run.model.generate(length=30, seed=1)
    assert text and set(text) <= set("".join(DOCS))
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # progress=False: nothing at all


def test_progress_goes_to_stderr_and_quiet_leaves_the_summary(tmp_path, capfd):
    charrnn.train(DOCS, out=tmp_path / "loud", steps=20, **dict(TINY, progress=True))
    out, err = capfd.readouterr()
    assert out == "" and "step 20 (" in err and "done" in err
    charrnn.train(DOCS, out=tmp_path / "quiet", steps=20, quiet=True, **dict(TINY, progress=True))
    out, err = capfd.readouterr()
    assert out == "" and "done" in err and "step 20 (" not in err


def test_train_on_a_missing_file_raises_the_command_lines_error(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    cli = invoke("train", "missing.txt", cwd=tmp_path)
    with pytest.raises(charrnn.CharrnnError) as raised:
        charrnn.train("missing.txt")
    assert cli.returncode == 2 and cli.stderr.strip() == f"charrnn: error: {raised.value}"
    assert capfd.readouterr().out == "" and not list(tmp_path.iterdir())


@pytest.mark.parametrize("data, options, message", [
    (DOCS, dict(hiden=3), "unknown keyword 'hiden'"),
    (DOCS, dict(hidden="3"), "hidden='3' is not a whole number"),
    (DOCS, dict(cell="lstn"), "cell='lstn' is not known; use lstm"),
    (DOCS, dict(time="soon"), "--time 'soon' is not a duration"),
    (DOCS, dict(label_from_file=True), "come from no file"),
    (["fine", ""], {}, "document 1 is empty"),
    ([], {}, "no data"),
    (42, {}, "not int"),
    ([Path("a.txt"), "text"], {}, "not both"),
])
def test_bad_training_calls_are_refused_before_anything_is_written(tmp_path, monkeypatch, data, options, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(charrnn.CharrnnError, match=message.replace("(", r"\(").replace(")", r"\)")):
        charrnn.train(data, steps=5, progress=False, **options)
    assert not list(tmp_path.iterdir())


def test_strings_that_name_files_are_not_taken_for_documents(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("book.txt").write_text(DOCS[0], encoding="utf-8")
    with pytest.raises(charrnn.CharrnnError, match="pass their paths as pathlib.Path"):
        charrnn.train(["book.txt"], steps=5, progress=False)
    run = charrnn.train("book.txt", steps=20, **TINY)  # one string is a path
    assert run.out == Path("checkpoints/book") and run.ended == "budget"


def test_on_eval_can_stop_a_run_and_resume_continues_it_exactly(tmp_path):
    whole = charrnn.train(DOCS, out=tmp_path / "whole", steps=60, **TINY)
    stopped = charrnn.train(DOCS, out=tmp_path / "parts", steps=60, on_eval=lambda e: e.step < 20, **TINY)
    assert stopped.ended == "stopped" and stopped.steps == 20
    rest = charrnn.train(DOCS, out=tmp_path / "parts", steps=60, resume=True, **TINY)
    untimed = [[{k: v for k, v in m.items() if k not in ("elapsed", "chars_per_s")} for m in r.metrics] for r in (rest, whole)]
    assert rest.ended == "budget" and rest.steps == 60 and untimed[0] == untimed[1]
    a, b = (torch.load(r.out / "last.pt", weights_only=True)["model"] for r in (whole, rest))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_ends_training_as_interrupted_and_it_resumes(tmp_path):
    def press_ctrl_c(evaluation):
        if evaluation.step == 20:
            os.kill(os.getpid(), signal.SIGINT)  # as a notebook's stop button does: SIGINT to the kernel

    run = charrnn.train(DOCS, out=tmp_path / "run", steps=100, on_eval=press_ctrl_c, **TINY)
    assert run.ended == "interrupted" and run.steps in (20, 21)
    assert torch.load(run.out / "last.pt", weights_only=True)["progress"]["step"] == run.steps
    rest = charrnn.train(DOCS, out=tmp_path / "run", steps=40, resume=True, **TINY)
    assert rest.ended == "budget" and rest.steps == 40


def test_fine_tuning_from_the_bundled_model_on_documents_in_memory(tmp_path):
    run = charrnn.train(["ROMEO. Good morrow, cousin.", "JULIET. Good night, good night!"] * 5, out=tmp_path / "ft",
                        init="base", steps=10, eval_every=10, progress=False, plot=False, sample_length=0)
    assert run.ended == "budget" and run.model.info["fine-tuned from"].startswith(str(charrnn.load().path))


def test_every_train_option_is_a_keyword_with_its_default():
    import inspect

    import typer

    from charrnn.cli.app import app

    command = typer.main.get_command(app).commands["train"]
    keywords = inspect.signature(charrnn.train).parameters
    for param in command.params:
        if param.name == "paths":
            continue
        name = param.opts[0].lstrip("-").replace("-", "_")
        assert name in keywords, f"{param.opts[0]} has no keyword"
        default = param.default if not isinstance(param.default, tuple) else tuple(param.default)
        expected = keywords[name].default
        if name == "time":
            continue  # the option takes text, the keyword seconds or text; both default to None
        assert default == expected or (default is None and name in {"cell", "layers", "hidden", "embed", "dropout",
                                                                    "weight_drop", "softmax"}), name


def test_every_sample_option_is_a_keyword_of_the_writing_calls():
    import inspect

    import typer

    from charrnn.cli.app import app

    command = typer.main.get_command(app).commands["sample"]
    keywords = set(inspect.signature(charrnn.Model.samples).parameters) | {"num_samples"}
    shown = {"checkpoint", "prime", "prime_file", "json", "color", "device", "threads", "quiet"}  # load's, or how shown
    for param in command.params:
        name = param.opts[0].lstrip("-").replace("-", "_")
        assert name in keywords or name in shown, f"{param.opts[0]} is not a keyword of Model.samples"


def test_the_typed_keywords_are_written_from_the_settings():
    assert OPTIONS.read_text(encoding="utf-8") == options_source(), "run make api-options"


def test_the_api_tour_passes_mypy_strict_and_a_wrong_keyword_does_not(tmp_path):
    mypy = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental",
            "--cache-dir", str(tmp_path / "cache")]
    env = dict(os.environ, MYPYPATH=str(ROOT))  # the package as source, its own errors silenced: the caller's view
    ran = subprocess.run([*mypy, str(ROOT / "examples" / "api_tour.py")], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (tmp_path / "wrong.py").write_text(textwrap.dedent("""
        import charrnn
        model = charrnn.load()
        text: int = model.generate(temprature=0.5)
        run = charrnn.train(["a"], hidden="512")
    """))
    ran = subprocess.run([*mypy, "wrong.py"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert ran.returncode == 1 and "temprature" in ran.stdout and '"hidden"' in ran.stdout, ran.stdout


@pytest.mark.slow
def test_the_api_tour_runs(tmp_path):
    ran = subprocess.run([sys.executable, str(ROOT / "examples" / "api_tour.py")], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() and not list(tmp_path.iterdir())
