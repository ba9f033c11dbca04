"""The command line end to end, as a user runs it: commands run in this process from the same entry point
(inprocess.invoke, no torch import each time), and in real subprocesses where the process is the subject
(--help's imports, a closed pipe, Ctrl-C, what a non-terminal stderr shows)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from inprocess import invoke as run


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, corpus_text):
    d = tmp_path_factory.mktemp("cli")
    (d / "play.txt").write_text(corpus_text[:30_000], encoding="utf-8")
    (d / "euro.txt").write_text("5 €\n", encoding="utf-8")
    r = run("train", "play.txt", "--steps", "30", "--layers", "1", "--hidden", "64", "--embed", "16",
            "--batch-size", "8", "--seq-len", "32", "--lr", "0.01", "--warmup", "5", "--eval-every", "15",
            "--sample-length", "40", cwd=d)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""  # training writes only to stderr
    assert "step 30" in r.stderr and "bpc" in r.stderr
    return d


def test_train_writes_default_run_directory(workdir):
    run_dir = workdir / "checkpoints" / "play"
    assert {p.name for p in run_dir.iterdir()} >= {"best.pt", "last.pt", "metrics.jsonl"}
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [15, 30]


def test_sample_stdout_holds_only_the_text(workdir):
    r = run("sample", "--prime", "ROMEO:", "--length", "120", "--seed", "3", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ROMEO:")
    vocab = set((workdir / "play.txt").read_text(encoding="utf-8"))
    assert set(r.stdout) <= vocab | {"\n"}
    assert len(r.stdout) <= len("ROMEO:") + 120 + 1
    assert "seed 3" in r.stderr and "sampling from" in r.stderr
    again = run("sample", "-c", "checkpoints/play/best.pt", "--prime", "ROMEO:", "--length", "120", "--seed", "3",
                cwd=workdir)
    assert again.stdout == r.stdout


def test_sample_reports_random_seed_and_several_samples(workdir):
    r = run("sample", "-n", "3", "--length", "30", "--top-k", "5", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert "seed " in r.stderr
    seed = r.stderr.split("seed ")[1].split()[0]
    again = run("sample", "-n", "3", "--length", "30", "--top-k", "5", "--seed", seed, cwd=workdir)
    assert again.stdout == r.stdout


def test_eval_and_info(workdir):
    r = run("eval", "-c", "checkpoints/play", "play.txt", "play.txt", cwd=workdir)
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.strip().splitlines()]
    assert rows[0][:3] == ["file", "nats/char", "bpc"]
    nats, bpc = float(rows[1][1]), float(rows[1][2])
    assert 0 < nats < 4.5 and bpc == pytest.approx(nats / 0.693147, rel=1e-3)
    assert rows[-1][0] == "(all)" and float(rows[-1][1]) == pytest.approx(nats, abs=1e-4)
    r = run("info", "-c", "checkpoints/play", cwd=workdir)
    assert r.returncode == 0, r.stderr
    for word in ("lstm 1 x 64", "parameters", "vocabulary", "step 30", "best val", "fingerprint", "play.txt"):
        assert word in r.stdout, word


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["sample", "--prime", "5€"], 2, "not in the model's vocabulary"),
        (["sample", "--temperature", "0"], 2, "--temperature must be"),
        (["sample", "--length", "-3"], 2, "--length must be"),
        (["sample", "-c", "nowhere.pt"], 2, "no such checkpoint"),
        (["train", "missing.txt"], 2, "no such file"),
        (["train", "play.txt", "--time", "soon"], 2, "not a duration"),
        (["train", "play.txt", "--device", "cuda"], 2, "CUDA"),
        (["eval", "-c", "play.txt", "play.txt"], 2, "not a readable checkpoint"),
        (["eval", "-c", "checkpoints/play", "play.txt", "euro.txt"], 2, "euro.txt: has characters the model never saw"),
    ],
)
def test_bad_input_gets_one_line_error(workdir, args, code, message):
    if args[:2] == ["train", "play.txt"] and "--device" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    r = run(*args, cwd=workdir)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stdout == ""


def test_skip_unknown_prime_characters(workdir):
    r = run("sample", "--prime", "ROMEO€:", "--skip-unknown", "--length", "10", "--seed", "1", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ROMEO:")


def test_help_does_not_import_torch():
    code = "import sys, charrnn.cli.app; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
    r = subprocess.run([sys.executable, "-m", "charrnn", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "train" in r.stdout and "sample" in r.stdout


def test_sample_into_closed_pipe_is_quiet(workdir):
    sample = f"{sys.executable} -m charrnn sample --prime 'ROMEO: O, she doth' -n 50 --length 5000 --seed 1"
    cmd = f"set -o pipefail; {sample} | head -c 10"
    r = subprocess.run(cmd, shell=True, cwd=workdir, capture_output=True, text=True,
                       env=dict(os.environ, NO_COLOR="1"), executable="/bin/bash")
    assert r.stdout == "ROMEO: O, "
    assert r.returncode == 0
    assert "Traceback" not in r.stderr and "Error" not in r.stderr and "ignored" not in r.stderr


def test_ctrl_c_keeps_best_writes_last_and_resume_finishes(workdir):
    import signal
    import time

    import torch

    args = ["train", "play.txt", "--out", "ctrlc", "--steps", "100000", "--layers", "1", "--hidden", "32",
            "--embed", "8", "--batch-size", "4", "--seq-len", "16", "--eval-every", "20", "--sample-length", "0"]
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", *args], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    best = workdir / "ctrlc" / "best.pt"
    deadline = time.time() + 120
    while not best.exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert out == ""
    assert "resume with" in err and "--resume" in err
    assert "Traceback" not in err
    last = torch.load(workdir / "ctrlc" / "last.pt", weights_only=True)
    assert last["progress"]["step"] >= 20
    assert torch.load(best, weights_only=True)["progress"]["step"] >= 20
    stopped_at = last["progress"]["step"]
    resumed = run("train", "play.txt", "--out", "ctrlc", "--resume", "--steps", str(stopped_at + 10), cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed at step {stopped_at:,}" in resumed.stderr
    assert torch.load(workdir / "ctrlc" / "last.pt", weights_only=True)["progress"]["step"] == stopped_at + 10


def test_line_corpus_from_stdin_gives_one_sample_per_line(names_run):
    import torch

    ckpt = torch.load(names_run / "names" / "best.pt", weights_only=True)
    assert ckpt["corpus"]["files"] == ["<stdin>"] and ckpt["corpus"]["documents"] > 1000
    assert ckpt["train_config"]["whole_documents"] is True
    r = run("sample", "-c", "names", "-n", "12", "--length", "40", "--seed", "5", cwd=names_run)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[-1] == "" and len(lines) == 13  # 12 samples, each ended by EOS and a newline
    assert all(line and " " not in line for line in lines[:-1]), lines
    # The small model puts ~90% of a name's first letter on capitals; the samples follow it.
    assert sum(line[0].isupper() for line in lines[:-1]) >= 8, lines


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_line_model_never_writes_an_empty_document(names_run, seed):
    for mode in ([], ["--greedy"], ["--top-p", "0.5"], ["--json"], ["--novel"]):
        r = run("sample", "-c", "names", "-n", "200", "--seed", seed, "-q", *mode, cwd=names_run)
        assert r.returncode == 0, r.stderr
        lines = [json.loads(x)["text"] for x in r.stdout.splitlines()] if mode == ["--json"] else r.stdout.splitlines()
        assert len(lines) == 200 and all(line.strip() for line in lines), (mode, [x for x in lines if not x.strip()])


def test_stop_strings_end_samples_and_never_leak_while_streaming(names_run):
    # 'a' then 'n' is common in names: the stop spans two drawn characters.
    r = run("sample", "-c", "names", "-n", "50", "--seed", "4", "--stop", "an", "-q", cwd=names_run)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 50 and not any("an" in x for x in lines)
    kept = run("sample", "-c", "names", "-n", "50", "--seed", "4", "--stop", "an", "--keep-stop", "--json", "-q",
               cwd=names_run)
    records = [json.loads(x) for x in kept.stdout.splitlines()]
    assert {rec["ended"] for rec in records} <= {"stop", "eos", "length"} and any(rec["ended"] == "stop" for rec in records)
    for rec, line in zip(records, lines, strict=True):  # the same draws: kept text = cut text + the stop
        assert rec["text"] == (line + "an" if rec["ended"] == "stop" else line)
    never = run("sample", "-c", "names", "-n", "5", "--seed", "4", "--stop", "qqq", "--stop", "\\n", "-q", cwd=names_run)
    assert never.stdout.splitlines() == run("sample", "-c", "names", "-n", "5", "--seed", "4", "-q",
                                            cwd=names_run).stdout.splitlines()


def test_prime_from_stdin_and_file(names_run):
    (names_run / "prime.txt").write_text("Mar", encoding="utf-8")
    a = run("sample", "-c", "names", "--prime", "-", "-n", "3", "--seed", "2", cwd=names_run, input="Mar")
    b = run("sample", "-c", "names", "--prime-file", "prime.txt", "-n", "3", "--seed", "2", cwd=names_run)
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert a.stdout == b.stdout
    assert all(line.startswith("Mar") for line in a.stdout.splitlines())
    bad = run("sample", "-c", "names", "--prime", "x", "--prime-file", "prime.txt", cwd=names_run)
    assert bad.returncode == 2 and "give one of them" in bad.stderr


def test_novel_and_unique_samples_are_new_and_distinct(names_run):
    training = set((names_run / "names").parent.joinpath("names").glob("*"))  # the run exists
    assert training
    corpus = set((Path(__file__).resolve().parent.parent / "corpora" / "names.txt").read_text().splitlines()[::3])
    r = run("sample", "-c", "names", "-n", "30", "--novel", "--unique", "--length", "40", "--seed", "1", cwd=names_run)
    assert r.returncode == 0, r.stderr
    names = r.stdout.splitlines()
    assert len(names) == 30 and len(set(names)) == 30
    assert not (set(names) & corpus)
    plain = run("sample", "-c", "names", "-n", "200", "--length", "40", "--seed", "1", cwd=names_run)
    assert set(plain.stdout.splitlines()) & corpus  # without --novel, the model does reproduce training names


def test_json_lines_parse_back(names_run):
    r = run("sample", "-c", "names", "-n", "4", "--json", "--seed", "3", "--prime", "A", cwd=names_run)
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["index"] for x in records] == [0, 1, 2, 3]
    assert all(x["text"].startswith("A") and x["prime"] == "A" and x["seed"] == 3 for x in records)
    assert {x["ended"] for x in records} <= {"eos", "length"}
    r = run("eval", "-c", "names", "-", "--json", cwd=names_run, input="Mary\nJohn\n")
    (record,) = [json.loads(line) for line in r.stdout.splitlines()]
    # A line model scores each line as a document: its characters and the EOS that ends it.
    assert record["file"] == "<stdin>" and record["scored"] == len("Mary") + 1 + len("John") + 1
    assert record["bpc"] == pytest.approx(record["nats_per_char"] / 0.693147, rel=1e-4)


def test_score_ranks_typical_lines_above_odd_ones(names_run):
    r = run("score", "-c", "names", cwd=names_run, input="Mary\nXqzzkv\n\nAnna\n")
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert [t for _, t in rows] == ["Mary", "Xqzzkv", "Anna"]  # one row per non-empty line, in order
    bpc = {t: float(b) for b, t in rows}
    assert bpc["Xqzzkv"] > bpc["Mary"] + 1 and bpc["Xqzzkv"] > bpc["Anna"] + 1
    j = run("score", "-c", "names", "--json", cwd=names_run, input="Mary\nM€ry\n")
    good, bad = [json.loads(line) for line in j.stdout.splitlines()]
    assert good["predictions"] == 5 and good["bpc"] == pytest.approx(-good["logprob"] / 5 / 0.693147, rel=1e-4)
    assert float(rows[0][0]) == pytest.approx(good["bpc"], abs=1e-3)
    assert bad["bpc"] is None and bad["unknown"] == ["€"]


def test_score_matches_eval_of_the_same_document(names_run, tmp_path):
    (tmp_path / "one.txt").write_text("Maryanne", encoding="utf-8")
    e = json.loads(run("eval", "-c", "names", str(tmp_path / "one.txt"), "--json", cwd=names_run).stdout)
    s = json.loads(run("score", "-c", "names", "--json", str(tmp_path / "one.txt"), cwd=names_run).stdout)
    assert s["bpc"] == pytest.approx(e["bpc"], abs=1e-4)


def test_exit_codes_by_failure_class(names_run):
    assert run("sample", "-c", "names", "-n", "1", "--seed", "1", cwd=names_run).returncode == 0
    assert run("sample", "-c", "names", "--top-p", "2", cwd=names_run).returncode == 2  # bad option value
    assert run("sample", "--bogus-flag", cwd=names_run).returncode == 2  # bad usage
    (names_run / "file").write_text("x")
    r = run("train", "-", "--out", "file/run", "--steps", "2", cwd=names_run, input="abcdefghij" * 50)
    assert r.returncode == 1 and "cannot create the run directory" in r.stderr  # runtime failure


def test_no_colour_or_bars_when_stderr_is_not_a_terminal(names_run):
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "CHARRNN_DEBUG")}
    r = subprocess.run([sys.executable, "-m", "charrnn", "train", "-", "--lines", "--out", "plain", "--steps", "4",
                        "--hidden", "16", "--embed", "4", "--eval-every", "2"], cwd=names_run, input="Ann\nBob\nCyd\nDee\n" * 20,
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "\x1b[" not in r.stderr and "━" not in r.stderr  # no ANSI escapes, no progress bar
    assert "step 4" in r.stderr
    quiet = run("train", "-", "--lines", "--out", "plain2", "--steps", "4", "--hidden", "16", "--quiet",
                cwd=names_run, input="Ann\nBob\nCyd\nDee\n" * 20)
    assert quiet.returncode == 0 and "step 2 " not in quiet.stderr and "done" in quiet.stderr


def test_dynamic_evaluation_beside_the_static_figures(workdir):
    (workdir / "again.txt").write_text((workdir / "play.txt").read_text(encoding="utf-8")[:3000] * 2, encoding="utf-8")
    r = run("eval", "again.txt", "--dynamic", cwd=workdir)
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.splitlines()
    assert header.endswith("dynamic nats/char\tdynamic bpc")
    fields = row.split("\t")
    assert float(fields[5]) < float(fields[1])  # the second copy is learned from the first
    plain = run("eval", "again.txt", cwd=workdir)
    assert plain.stdout.splitlines()[1] == "\t".join(fields[:5])  # the static figure is unchanged
    j = run("eval", "again.txt", "--dynamic", "--json", "--dynamic-rule", "sgd", "--dynamic-lr", "0.1", cwd=workdir)
    record = json.loads(j.stdout)
    assert record["dynamic_bpc"] < record["bpc"] and "dynamic_nats_per_char" in record
    bad = run("eval", "again.txt", "--dynamic", "--dynamic-rule", "adam", cwd=workdir)
    assert bad.returncode == 2 and "--dynamic-rule 'adam' is not known" in bad.stderr and "Traceback" not in bad.stderr
    assert bad.stdout == ""  # refused before the table starts


def test_score_dynamic_and_sample_adapt(workdir):
    r = run("score", "--dynamic", "--json", cwd=workdir, input="ROMEO\nROMEO\nROMEO\n")
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert rows[0]["dynamic_bpc"] == pytest.approx(rows[0]["bpc"], abs=1e-4)  # nothing learned before the first
    assert rows[2]["dynamic_bpc"] < rows[2]["bpc"]
    args = ("sample", "--prime-file", "play.txt", "--length", "80", "--seed", "5", "-q")
    adapted, plain = run(*args, "--adapt", cwd=workdir), run(*args, cwd=workdir)
    assert adapted.returncode == 0, adapted.stderr
    assert adapted.stdout != plain.stdout and adapted.stdout.startswith(plain.stdout[:1000])
    none = run("sample", "--adapt", "-q", cwd=workdir)
    assert none.returncode == 2 and "--adapt learns from the prime" in none.stderr


def test_a_time_budget_that_only_overfits_stops_early_and_says_why(tmp_path, corpus_text):
    (tmp_path / "short.txt").write_text(corpus_text[:1000], encoding="utf-8")
    r = run("train", "short.txt", "--time", "2m", "--layers", "1", "--hidden", "128", "--embed", "16",
            "--batch-size", "8", "--seq-len", "32", "--lr", "0.02", "--warmup", "5", "--eval-every", "10",
            "--patience", "3", "--val-frac", "0.2", "--sample-length", "0", "--no-plot", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "stopped early at" in r.stderr and "has not improved for 3 evaluations" in r.stderr
    assert "dropout 0.3, weight drop 0.3: the budget reads the training text" in r.stderr  # 800 chars for 2 minutes
