"""The CUDA paths, run for real on an NVIDIA GPU (`make gpu-check`); skipped where CUDA is absent.

Each test says what it proves: cuDNN training and every command on a GPU model, fp16 and bf16
autocast with fp32 master weights (and the fp16 loss scaler saved and resumed; bf16 refused), a checkpoint
written on the GPU read on a CPU with the same logits, Ctrl-C and --resume, NCCL under torchrun (two GPUs or more),
--compile, batched sampling, and a time budget choosing its streams per step by measurement.

`CHARRNN_CUDA_TESTS_ON=cpu pytest -m cuda` (make gpu-dry-run) runs them on the CPU instead, bf16 standing in for
fp16 and the tests about CUDA alone skipped: it checks the tests themselves before a GPU loan, which one broken
test would waste.
"""

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from conftest import ATEN_CAPPED, TINY_MODEL, tiny_config
from test_trainer import StopAt

from charrnn.api.loading import load_model
from charrnn.errors import UsageError
from charrnn.model.checkpoint import load_checkpoint
from charrnn.model.runtime import kernel_problem
from charrnn.training.config import LR, TrainConfig
from charrnn.training.sizing import GPU_STREAMS, scaled_lr
from charrnn.training.train import train

pytestmark = pytest.mark.cuda
GPU = os.environ.get("CHARRNN_CUDA_TESTS_ON", "cuda")  # conftest runs these where CUDA is, or where this names a device
# The half precision under test: fp16 with its loss scaler on CUDA; in a dry run bf16 where that CPU runs it.
HALF = "fp16" if GPU == "cuda" else "fp32" if kernel_problem(torch.device(GPU), torch.bfloat16) else "bf16"
cuda_only = pytest.mark.skipif(GPU != "cuda", reason=f"about CUDA itself: not in a dry run on {GPU}")
FLAGS = ["--layers", "1", "--hidden", "64", "--embed", "16", "--batch-size", "16", "--seq-len", "32",
         "--sample-length", "0", "--no-plot", "-q"]


def cli(*args, cwd, input=None):
    return subprocess.run([sys.executable, "-m", "charrnn", *map(str, args)], cwd=cwd, input=input, capture_output=True,
                          text=True, timeout=600)


def cuda_config(**kw) -> TrainConfig:
    return tiny_config(**{"device": GPU, "batch_size": 16, **kw})


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory, corpus_text):
    """A model trained on the GPU from the command line, default precision (fp16 autocast on CUDA)."""
    d = tmp_path_factory.mktemp("gpu")
    (d / "play.txt").write_text(corpus_text, encoding="utf-8")
    r = cli("train", "play.txt", "--device", GPU, "--steps", "120", "--eval-every", "40", "--out", "run", *FLAGS, cwd=d)
    assert r.returncode == 0, r.stderr
    return d


def test_every_command_runs_on_a_gpu_model(gpu_run):
    ckpt = load_checkpoint(gpu_run / "run" / "best.pt")
    assert ckpt["train_config"]["device"] == GPU and ckpt["progress"]["step"] == 120
    r = cli("sample", "-c", "run", "--device", GPU, "--length", "200", "--seed", "1", "--prime", "KING", cwd=gpu_run)
    assert r.returncode == 0 and r.stdout.startswith("KING") and len(r.stdout) > 150, r.stderr
    (gpu_run / "held.txt").write_text("ROMEO.\nWhat light through yonder window breaks?\n", encoding="utf-8")
    r = cli("eval", "-c", "run", "--device", GPU, "held.txt", "--json", cwd=gpu_run)
    assert r.returncode == 0 and math.isfinite(json.loads(r.stdout.splitlines()[-1])["nats_per_char"]), r.stderr
    r = cli("score", "-c", "run", "--device", GPU, "--json", "-", input="To be, or not to be\n", cwd=gpu_run)
    assert r.returncode == 0 and json.loads(r.stdout.splitlines()[0])["bpc"] > 0, r.stderr
    r = cli("inspect", "-c", "run", "--json", "-", input="KING.\n", cwd=gpu_run)  # a GPU checkpoint, read anywhere
    assert r.returncode == 0 and len(r.stdout.splitlines()) >= 5, r.stderr


def test_sampling_256_streams_on_the_gpu(gpu_run):
    r = cli("sample", "-c", "run", "--device", GPU, "-n", "256", "--length", "80", "--seed", "2", "--json", cwd=gpu_run)
    assert r.returncode == 0, r.stderr
    samples = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(samples) == 256 and len({s["text"] for s in samples}) > 200  # each stream its own draw


@cuda_only
def test_a_time_budget_on_the_gpu_measures_its_streams_and_scales_the_rate(tmp_path, corpus_text, capsys):
    # Defaults that fill a GPU: under --time, --batch-size not given, the GPU times each of GPU_STREAMS the text can
    # fill and trains the fewest within STREAMS_ENOUGH of the fastest, the learning rate scaled to them.
    (tmp_path / "play.txt").write_text(corpus_text, encoding="utf-8")
    r = cli("train", "play.txt", "--device", GPU, "--time", "20s", "--out", "run", "--sample-length", "0", "--no-plot",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    tc = load_checkpoint(tmp_path / "run" / "last.pt")["train_config"]
    assert tc["batch_size"] in GPU_STREAMS and tc["batch_size"] * tc["seq_len"] <= len(corpus_text)
    assert tc["lr"] == pytest.approx(scaled_lr(LR, tc["batch_size"]))
    assert f"with {tc['batch_size']} streams a step" in r.stderr
    with capsys.disabled():
        print(f"\n  --time 20s on {GPU}: " + next(line for line in r.stderr.splitlines() if "streams a step" in line))


@cuda_only
def test_bf16_on_cuda_is_refused_before_any_work(tmp_path, corpus_text):
    # Autocast would run cuDNN's LSTM in fp16 without the scaler: see runtime.asked_dtype.
    with pytest.raises(UsageError, match="--precision bf16 on CUDA"):
        train([corpus_text], TINY_MODEL, cuda_config(steps=5, precision="bf16"), tmp_path / "run", sample_every_eval=0)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("precision", [HALF])
def test_mixed_precision_trains_fp32_master_weights_and_resumes(tmp_path, corpus_text, precision):
    cfg = cuda_config(steps=60, eval_every=20, precision=precision)
    train([corpus_text], TINY_MODEL, cfg, tmp_path, sample_every_eval=0)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    losses = [m["train_loss"] for m in ckpt["metrics"]]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert all(t.dtype == torch.float32 for t in ckpt["model"].values())  # master weights stay fp32
    if precision == "fp16":  # the loss scaler's state travels with the run
        assert ckpt["scaler"] and ckpt["scaler"]["scale"] > 0
    train([corpus_text], {}, cuda_config(steps=80, eval_every=20, precision=precision), tmp_path, resume=True,
          sample_every_eval=0)
    resumed = load_checkpoint(tmp_path / "last.pt")
    assert resumed["progress"]["step"] == 80 and math.isfinite(resumed["metrics"][-1]["val_loss"])
    if precision == "fp16":
        assert resumed["scaler"]["scale"] > 0


@pytest.mark.parametrize("optimizer", ["muon", "muon-gates"])
def test_muon_trains_and_resumes_on_the_gpu_in_fp16(tmp_path, corpus_text, optimizer):
    # Muon is the default where a budget reads the text under 25 times; on a GPU its Newton-Schulz runs in bf16
    # while the loss is scaled for fp16: the scaler must see both optimisers (optim.Combined.parts).
    cfg = cuda_config(steps=40, eval_every=20, precision=HALF, optimizer=optimizer)
    train([corpus_text], TINY_MODEL, cfg, tmp_path, sample_every_eval=0)
    first = load_checkpoint(tmp_path / "last.pt")
    losses = [m["train_loss"] for m in first["metrics"]]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    train([corpus_text], {}, cuda_config(steps=60, eval_every=20, precision=HALF, optimizer=optimizer), tmp_path,
          resume=True, sample_every_eval=0)
    assert load_checkpoint(tmp_path / "last.pt")["progress"]["step"] == 60


@pytest.fixture
def no_tf32():
    """TF32 off for one test. (Not monkeypatch: torch's backend flags are properties of module objects, which
    monkeypatch's undo would try to delete, failing the test at teardown.)"""
    flags = torch.backends.cuda.matmul, torch.backends.cudnn
    before = [f.allow_tf32 for f in flags]
    for f in flags:
        f.allow_tf32 = False
    yield
    for f, value in zip(flags, before, strict=True):
        f.allow_tf32 = value


def test_a_gpu_checkpoint_gives_the_same_logits_on_the_cpu(tmp_path, corpus_text, no_tf32):
    # TF32 off: compare fp32 arithmetic with fp32 arithmetic.
    train([corpus_text], TINY_MODEL, cuda_config(steps=30, precision="fp32"), tmp_path, sample_every_eval=0)
    on_gpu, vocab, _ = load_model(tmp_path / "best.pt", torch.device(GPU))
    on_cpu, _, _ = load_model(tmp_path / "best.pt", torch.device("cpu"))
    ids = torch.from_numpy(vocab.encode(corpus_text[:500]))[None]
    with torch.no_grad():
        a, b = on_gpu(ids.to(GPU))[0].cpu(), on_cpu(ids)[0]
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_ctrl_c_then_resume_on_the_gpu_continues_the_run(tmp_path, corpus_text, capsys):
    cfg = cuda_config(steps=40, eval_every=10, precision="fp32")
    model_cfg = dict(TINY_MODEL, dropout=0.2)
    train([corpus_text], model_cfg, cfg, tmp_path / "full", sample_every_eval=0)
    part = train([corpus_text], model_cfg, cfg, tmp_path / "part", reporter=StopAt(17), sample_every_eval=0)
    assert part.progress.stopped == "interrupted" and part.progress.step == 17
    train([corpus_text], {}, TrainConfig(device=GPU), tmp_path / "part", resume=True, sample_every_eval=0)
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "part" / "last.pt")
    assert a["progress"]["step"] == b["progress"]["step"] == 40
    identical = all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    if not identical:  # cuDNN may pick non-deterministic kernels: the same run within rounding
        for k in a["model"]:
            torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-3, atol=1e-4)
    with capsys.disabled():
        print(f"\n  resume on {GPU}: {'bit-identical' if identical else 'within tolerance (not bit-identical)'}")


@cuda_only
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL needs two GPUs: with one, torchrun's world is one "
                    "process and neither DDP nor NCCL would run (test_distributed runs DDP with gloo on the CPU)")
def test_torchrun_with_nccl_on_the_gpus_present(tmp_path, corpus_text):
    n = torch.cuda.device_count()
    (tmp_path / "play.txt").write_text(corpus_text, encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
                        "-m", "charrnn", "train", "play.txt", "--device", GPU, "--steps", "20", "--eval-every", "10",
                        "--out", "run", *FLAGS], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt.get("world", 1) == n and ckpt["progress"]["step"] == 20


@ATEN_CAPPED  # (only ever set on a CPU: a dry run)
def test_compile_on_the_gpu(tmp_path, corpus_text):
    (tmp_path / "play.txt").write_text(corpus_text, encoding="utf-8")
    r = cli("train", "play.txt", "--device", GPU, "--compile", "--steps", "30", "--eval-every", "15", "--out", "run",
            *FLAGS, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert math.isfinite(load_checkpoint(tmp_path / "run" / "best.pt")["progress"]["best_val"])


def test_serve_on_the_gpu_writes_what_sample_writes_there(gpu_run):
    # The engine's draws (each request's generator on the GPU) match `charrnn sample --device cuda`; so do
    # several requests sharing the GPU batch at once: 12 rows, past SMALL_STEP_BATCH, so the batch takes the fused
    # cuDNN step while each request alone (3 rows) takes the per-layer one (runtime.plain_fp32 keeps them alike).
    import threading

    from conftest import Server

    server = Server(gpu_run / "run" / "best.pt", "--device", GPU)
    try:
        answers = {}

        def ask(seed):
            answers[seed] = server.post("/v1/sample", {"prime": "KING", "length": 300, "seed": seed, "n": 3, "stream": False})

        threads = [threading.Thread(target=ask, args=(seed,)) for seed in (1, 2, 3, 4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for seed, (status, done) in answers.items():
            r = cli("sample", "-c", "run", "--device", GPU, "--prime", "KING", "--length", "300", "--seed", seed, "-n", "3",
                    "--json", "-q", cwd=gpu_run)
            assert status == 200 and r.returncode == 0, r.stderr
            assert [s["text"] for s in done["samples"]] == [json.loads(x)["text"][len("KING"):] for x in r.stdout.splitlines()]
    finally:
        server.stop()
