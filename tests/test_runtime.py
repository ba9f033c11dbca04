"""Threads, precision (and what this machine can run), compilation and the model a --time budget buys."""

import os
import platform
import subprocess
import sys

import pytest
import torch
from conftest import ATEN_CAPPED, TINY_MODEL, Notes, tiny_config

from charrnn.errors import UsageError
from charrnn.model import runtime
from charrnn.model.config import ModelConfig, Regularisation
from charrnn.model.runtime import autocast_dtype, available_cores, kernel_problem, set_threads
from charrnn.training import sizing
from charrnn.training.train import train

CPU = torch.device("cpu")


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_are_set_and_default_to_the_cores_available(restore_threads):
    assert set_threads(1) == 1 and torch.get_num_threads() == 1
    assert set_threads(None) == available_cores() == torch.get_num_threads()
    with pytest.raises(UsageError, match="--threads must be at least 1"):
        set_threads(0)


BF16_LSTM = kernel_problem(CPU, torch.bfloat16, "lstm")  # None where this CPU runs the LSTM in bf16
needs_bf16 = pytest.mark.skipif(BF16_LSTM is not None, reason=f"bf16: {BF16_LSTM}")
CAPPED = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", NO_COLOR="1")  # oneDNN as on an AVX2-only CPU
x86 = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="ONEDNN_MAX_CPU_ISA=AVX2 caps x86-64 CPUs")


def test_precision_choices():
    assert autocast_dtype("auto", CPU) is None  # fp32 on a CPU
    assert autocast_dtype(None, CPU) is None  # not given: auto
    assert autocast_dtype("fp32", CPU) is None
    assert autocast_dtype("bf16", CPU, "gru") is torch.bfloat16  # ATen's own GRU kernel runs bf16 on any CPU
    with pytest.raises(UsageError, match="needs a CUDA GPU"):
        autocast_dtype("fp16", CPU)
    with pytest.raises(UsageError, match="not known"):
        autocast_dtype("half", CPU)
    with pytest.raises(UsageError, match=r"^--precision bf16 on CUDA: .*cuDNN.* fp16 without loss scaling; use --precision fp16"):
        autocast_dtype("bf16", torch.device("cuda"))  # refused by name: no GPU is needed to know it


def test_the_fused_sampling_step_on_a_gpu_computes_in_plain_fp32():
    torch.backends.cudnn.allow_tf32 = True  # cuDNN's default
    with runtime.plain_fp32(torch.device("cuda")):
        assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 is True
    with runtime.plain_fp32(CPU):
        assert torch.backends.cudnn.allow_tf32 is True  # nothing to change on a CPU


@needs_bf16
def test_bf16_is_taken_where_the_cpu_runs_it():
    assert autocast_dtype("bf16", CPU) is torch.bfloat16


def test_a_precision_the_machine_lacks_is_refused_naming_the_fix(monkeypatch):
    monkeypatch.setattr(runtime, "kernel_problem", lambda device, dtype, cell="lstm": "this CPU (AVX2) cannot run it")
    with pytest.raises(UsageError, match=r"^--precision bf16: this CPU \(AVX2\) cannot run it; use --precision fp32$"):
        autocast_dtype("bf16", CPU)
    assert autocast_dtype("auto", torch.device("cuda")) is None  # auto falls back to fp32 where fp16 cannot run


def test_the_probe_is_asked_once_and_leaves_the_random_streams_alone():
    torch.manual_seed(5)
    before = torch.get_rng_state()
    runtime._probe.cache_clear()
    kernel_problem(CPU, torch.bfloat16, "rnn")
    assert torch.equal(torch.get_rng_state(), before)
    kernel_problem(CPU, torch.bfloat16, "rnn")
    assert runtime._probe.cache_info().hits == 1


@x86
def test_train_in_bf16_where_onednn_lacks_it_is_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "x.txt").write_text("to be or not to be " * 200)
    r = subprocess.run([sys.executable, "-m", "charrnn", "train", "x.txt", "--precision", "bf16", "--steps", "2"],
                       cwd=tmp_path, capture_output=True, text=True, env=CAPPED, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "--precision bf16: this CPU" in r.stderr and "use --precision fp32" in r.stderr
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in r.stderr and "AVX-512" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]  # no run directory


@x86
def test_resuming_a_bf16_run_where_it_cannot_run_is_refused_and_fp32_goes_on(tmp_path, corpus_text):
    train([corpus_text[:5000]], TINY_MODEL, tiny_config(steps=4, eval_every=4), tmp_path / "run", sample_every_eval=0)
    last = tmp_path / "run" / "last.pt"
    ckpt = torch.load(last, weights_only=True)  # as a run trained in bf16 on another machine leaves it
    ckpt["train_config"]["precision"] = "bf16"
    ckpt["state"] = [s.to(torch.bfloat16) for s in ckpt["state"]]
    torch.save(ckpt, last)
    (tmp_path / "x.txt").write_text(corpus_text[:5000])
    cmd = [sys.executable, "-m", "charrnn", "train", "x.txt", "--out", "run", "--resume", "--steps", "6", "-q"]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=CAPPED, timeout=120)
    assert r.returncode == 2 and "--resume of a run trained in bf16: this CPU" in r.stderr, r.stderr
    assert torch.load(last, weights_only=True)["progress"]["step"] == 4  # untouched
    r = subprocess.run([*cmd, "--precision", "fp32"], cwd=tmp_path, capture_output=True, text=True, env=CAPPED,
                       timeout=120)
    assert r.returncode == 0, r.stderr  # the half-precision state was read back in fp32
    resumed = torch.load(last, weights_only=True)
    assert resumed["progress"]["step"] == 6 and resumed["train_config"]["precision"] == "fp32"
    assert all(s.dtype == torch.float32 for s in resumed["state"])


def fake_rates(flops_per_s: float):
    """A device that trains at a rate inversely proportional to the model's parameters, whatever the streams."""
    return lambda cfg, streams=32: flops_per_s / (6 * sizing.count_params(cfg))


def test_longer_budgets_buy_larger_models():
    base = ModelConfig(vocab_size=65)
    picks = [sizing.choose_model(base, 10**9, budget, 32, 64, CPU, measure=fake_rates(1e11))
             for budget in (10, 120, 600, 3600, 36_000)]
    sizes = [sizing.count_params(ModelConfig(vocab_size=65, layers=p.layers, hidden=p.hidden)) for p in picks]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    for p, budget in zip(picks, (10, 120, 600, 3600, 36_000), strict=True):
        # Each choice lets the model read its quota of characters, unless it is the smallest rung.
        readable = p.chars_per_s * budget * sizing.USABLE
        assert (p.layers, p.hidden) == sizing.LADDER[0] or readable >= sizing.CHARS_PER_PARAM * p.params
    assert "chars per parameter" in picks[1].reason


def test_regularisation_grows_with_the_passes_the_budget_buys_weighed_by_the_parameters_per_character():
    rows = sizing.REGULARISATION_BY_MEMORISATION
    assert sizing.regularisation_for(0.01) == Regularisation(0.0) and sizing.regularisation_for(1000) == rows[-1][1]
    regs = [sizing.regularisation_for(m) for m in (0.05, 0.5, 5, 20, 40, 60, 100, 1000)]
    assert [r.dropout + r.weight_drop for r in regs] == sorted(r.dropout + r.weight_drop for r in regs)
    assert regs[0].dropout < regs[-1].dropout and regs[0].weight_drop < regs[-1].weight_drop
    assert sizing.memorisation(20, 700_000, 200_000) == 70.0
    base = ModelConfig(vocab_size=65)
    big = sizing.choose_model(base, 10**8, 600, 32, 64, CPU, measure=fake_rates(1e11))
    small = sizing.choose_model(base, 10**5, 600, 32, 64, CPU, measure=fake_rates(1e11))
    assert small.passes > big.passes and small.regularisation.dropout > big.regularisation.dropout
    learning = sizing.count_params(ModelConfig(vocab_size=65, layers=small.layers, hidden=small.hidden), embedding=False)
    assert small.memorisation == pytest.approx(small.passes * learning / 10**5)
    assert small.regularisation == sizing.regularisation_for(small.memorisation)
    assert small.regularisation.describe() in small.reason and "memorisation" in small.reason


def test_the_same_passes_call_for_more_regularisation_when_the_model_holds_more_per_character():
    # tinyshakespeare read ~26 times by 1 x 512 (1.2 parameters per character) keeps dropout 0.1; names read ~20
    # times by 2 x 256 (4.3 per character) overfits without dropout 0.3 and weight drop 0.3 (sizing's comments).
    ts = sizing.count_params(ModelConfig(vocab_size=66, layers=1, hidden=512), embedding=False) / 1_003_854
    names = sizing.count_params(ModelConfig(vocab_size=28, layers=2, hidden=256), embedding=False) / 198_889
    assert sizing.regularisation_for(26 * ts) == Regularisation(0.1)
    assert sizing.regularisation_for(20 * names) == Regularisation(0.3, weight_drop=0.3)


def test_a_budget_that_reads_a_small_corpus_many_times_takes_two_layers():
    base = ModelConfig(vocab_size=65)
    many = sizing.choose_model(base, 200_000, 600, 32, 64, CPU, measure=fake_rates(1e11))
    assert (many.layers, many.hidden) == sizing.DEEP_SMALL and many.passes > 20
    assert "too often for one layer" in many.reason
    assert many.regularisation == sizing.regularisation_for(many.memorisation) == sizing.REGULARISATION_BY_MEMORISATION[-1][1]
    assert "weight drop" in many.reason
    few = sizing.choose_model(base, 10**9, 600, 32, 64, CPU, measure=fake_rates(1e11))
    assert (few.layers, few.hidden) == (1, 512) and few.regularisation == Regularisation(0.0)


def test_on_a_slower_machine_two_layers_are_taken_even_short_of_their_characters_per_parameter():
    # names (199k training chars) at 5 minutes on a machine a third as fast as the calibration one: one layer would
    # overfit (memorisation past the limit), and 2 x 256 reads fewer than CHARS_PER_PARAM characters per parameter.
    base, chars, budget = ModelConfig(vocab_size=28), 198_889, 300
    deep = sizing.count_params(ModelConfig(vocab_size=28, layers=2, hidden=256), embedding=False)
    per_s = 4.0 * deep / (budget * sizing.USABLE)  # 2 x 256 would read 4 characters per parameter

    def rate(cfg, streams=32):  # the one-layer rungs as fast as 2 x 256 is, per parameter
        return per_s * deep / sizing.count_params(cfg, embedding=False)

    pick = sizing.choose_model(base, chars, budget, 32, 64, CPU, measure=rate)
    assert (pick.layers, pick.hidden) == sizing.DEEP_SMALL and "too often for one layer" in pick.reason
    assert sizing.DEEP_MIN_CHARS_PER_PARAM < pick.chars_per_s * budget * sizing.USABLE / deep < sizing.CHARS_PER_PARAM
    slower = sizing.choose_model(base, chars, budget, 32, 64, CPU, measure=lambda c, s=32: rate(c) / 2)
    assert slower.layers == 1  # 2 x 256 would read 2 per parameter: under-trained, so one layer stays


def test_a_faster_device_buys_a_larger_model_and_a_small_corpus_caps_it():
    base = ModelConfig(vocab_size=65)
    slow = sizing.choose_model(base, 10**9, 600, 32, 64, CPU, measure=fake_rates(1e11))
    fast = sizing.choose_model(base, 10**9, 600, 32, 64, CPU, measure=fake_rates(1e13))
    assert fast.params > slow.params
    small = sizing.choose_model(base, 50_000, 600, 32, 64, CPU, measure=fake_rates(1e13))
    assert small.params <= sizing.MAX_PARAMS_PER_CHAR * 50_000 or (small.layers, small.hidden) == sizing.LADDER[0]
    assert "too small" in small.reason


def test_a_time_budget_without_a_size_measures_and_chooses_one(tmp_path, corpus_text):
    notes = Notes()
    given = {"embed": 16}  # neither layers nor hidden: the budget decides
    result = train([corpus_text[:20_000]], given, tiny_config(steps=None, time_budget=3, eval_every=None), tmp_path,
                   reporter=notes, sample_every_eval=0)
    ckpt = torch.load(tmp_path / "best.pt", weights_only=True)
    mc = ckpt["model_config"]
    assert (mc["layers"], mc["hidden"]) in (*sizing.LADDER, sizing.DEEP_SMALL)
    assert Regularisation(mc["dropout"], mc["weight_drop"]) in dict(sizing.REGULARISATION_BY_MEMORISATION).values()
    assert mc["embed"] == 16
    assert any("chose" in n and f"{mc['layers']} x {mc['hidden']}" in n for n in notes.notes)
    assert 0 < result.progress.elapsed < 3 + 5  # choosing counts against the budget


def test_given_sizes_are_kept_under_a_time_budget(tmp_path, corpus_text):
    notes = Notes()
    train([corpus_text[:5000]], TINY_MODEL, tiny_config(steps=None, time_budget=1), tmp_path, reporter=notes,
          sample_every_eval=0)
    assert torch.load(tmp_path / "best.pt", weights_only=True)["model_config"]["hidden"] == TINY_MODEL["hidden"]
    assert not any("chose" in n for n in notes.notes)




@pytest.mark.parametrize("options", [pytest.param({"precision": "bf16"}, marks=needs_bf16),
                                     pytest.param({"compile": True}, marks=ATEN_CAPPED)])
def test_bf16_autocast_and_compile_train_on_the_cpu(tmp_path, corpus_text, options):
    result = train([corpus_text[:5000]], TINY_MODEL, tiny_config(steps=12, eval_every=6, **options), tmp_path,
                   sample_every_eval=0)
    ckpt = torch.load(tmp_path / "best.pt", weights_only=True)
    assert all(t.dtype == torch.float32 for t in ckpt["model"].values())  # master weights stay fp32
    assert all(s.dtype == torch.float32 for s in ckpt["state"])  # the carried state too, whatever ran
    losses = [r["val_loss"] for r in result.metrics]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def saturating(flops_per_s: float, full: int = 256):
    """A GPU-like device: more streams cost it little time per step until `full`, where it is busy."""
    return lambda cfg, streams=32: flops_per_s / (6 * sizing.count_params(cfg)) * min(streams, full) / full


def test_a_gpu_chooses_its_streams_by_measurement_and_reaches_higher_rungs():
    base, cuda = ModelConfig(vocab_size=65), torch.device("cuda")  # nothing runs on it: the rates are given
    pick = sizing.choose_model(base, 10**9, 600, 32, 64, cuda, measure=saturating(1e13), streams=sizing.GPU_STREAMS)
    assert pick.streams == 256  # the fewest streams at 90% of the fastest rate
    alone = sizing.choose_model(base, 10**9, 600, 32, 64, cuda, measure=saturating(1e13))
    assert alone.streams == 32 and alone.params <= pick.params  # without the choice, the batch asked for
    huge = sizing.choose_model(base, 10**10, 36_000, 32, 64, cuda, measure=fake_rates(1e15))
    assert (huge.layers, huge.hidden) == sizing.GPU_LADDER[-1] and sizing.GPU_LADDER[-1] not in sizing.LADDER
    cpu = sizing.choose_model(base, 10**10, 36_000, 32, 64, CPU, measure=fake_rates(1e15))
    assert (cpu.layers, cpu.hidden) == sizing.LADDER[-1]  # a CPU's ladder is as it was
    assert sizing.streams_for(CPU, 10**9, 64) is None and sizing.streams_for(cuda, 20_000, 64) == (32, 64, 128, 256)
    assert sizing.scaled_lr(5e-3, 32) == 5e-3 and sizing.scaled_lr(5e-3, 128) == pytest.approx(1e-2)
    assert sizing.scaled_lr(5e-3, 1024) == pytest.approx(5e-3 * sizing.MAX_LR_SCALE)


@pytest.mark.parametrize("device, asked, streams", [("cuda", {"batch_size": False, "lr": False}, 256),
                                                    ("cuda", {"batch_size": True, "lr": False}, 32),
                                                    ("cpu", {"batch_size": False, "lr": False}, 32)])
def test_a_time_budget_on_a_gpu_sets_streams_and_learning_rate_unless_given(monkeypatch, device, asked, streams):
    from charrnn.training.runs import new_model_config

    monkeypatch.setattr(sizing, "measure_chars_per_s", lambda cfg, b, seq, dev, **kw: saturating(1e13)(cfg, b))
    cfg = tiny_config(steps=None, time_budget=600, batch_size=32, seq_len=64, lr=5e-3, device=device)
    notes = Notes()
    mc, chosen = new_model_config({}, 65, 10**9, cfg, torch.device(device), notes, asked=asked)
    assert chosen.batch_size == streams
    assert chosen.lr == pytest.approx(sizing.scaled_lr(5e-3, streams))
    assert (f"with {streams} streams a step" in notes.notes[0]) == (streams != 32 or device == "cuda" and
                                                                    not asked["batch_size"])
