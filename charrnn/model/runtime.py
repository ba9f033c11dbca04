"""Where and how the arithmetic runs: device, CPU threads, mixed precision, compilation.

Every command that computes goes through here, so the choices are made in one place and reported.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch

from ..errors import UsageError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(name: str) -> torch.device:
    """'auto' picks CUDA, then MPS, then the CPU; asking for an absent device is a UsageError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is visible here; use --device cpu or auto")
    if name == "mps" and not _mps_available():
        raise UsageError("--device mps: Apple MPS is not available here; use --device cpu or auto")
    if name not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {name!r} is not known; use auto, cpu, cuda or mps")
    return torch.device(name)


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def available_cores() -> int:
    """CPU cores this process may run on (respects taskset/cgroup affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_threads(threads: int | None) -> int:
    """Use `threads` CPU threads for torch's kernels (None: the available cores, shared among torchrun's
    processes on this machine); returns the number set.

    torch's own default follows the machine's core count, which in a container or under taskset can be
    far more than the cores granted, and oversubscribed OpenMP threads slow every kernel down.
    """
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    # torchrun starts LOCAL_WORLD_SIZE processes on this machine: they share its cores.
    n = threads or max(1, available_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def autocast_dtype(precision: str | None, device: torch.device, cell: str = "lstm",
                   asked: str | None = None) -> torch.dtype | None:
    """The dtype to autocast matrix products to, or None for plain fp32; a UsageError naming the fix for a
    precision this device cannot run for `cell` (its message begins with `asked`, default "--precision P").

    auto: fp16 on a CUDA GPU (with loss scaling, see train): cuDNN's LSTM has long supported fp16
    under autocast and runs it on tensor cores, while its bf16 path has a history of missing kernels
    across versions; fp32 elsewhere (CPUs without bf16 units run bf16 slower than fp32), and fp32
    wherever the device turns out to lack the kernel (kernel_problem). bf16 is there to ask for by name.
    """
    precision = precision or "auto"
    dtype = asked_dtype(precision, device)
    if dtype is None:
        return None
    problem = kernel_problem(device, dtype, cell)
    if problem is None:
        return dtype
    if precision == "auto":
        return None
    raise UsageError(f"{asked or '--precision ' + precision}: {problem}; use --precision fp32")


def asked_dtype(precision: str | None, device: torch.device) -> torch.dtype | None:
    """What `precision` (None: auto) asks for on this kind of device, before asking the device's kernels;
    a UsageError for a name not known, and for fp16 off CUDA (its loss scaling is there only)."""
    precision = precision or "auto"
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r} is not known; use {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise UsageError("--precision fp16 needs a CUDA GPU (loss scaling); use bf16 or fp32 here")
    if precision == "bf16" and device.type == "cuda":
        # Autocast hands cuDNN's RNN kernels fp16 whatever dtype was asked: bf16 would be fp16 without the loss
        # scaling that keeps its small gradients from flushing to zero. Refused rather than silently half-scaled.
        raise UsageError("--precision bf16 on CUDA: autocast runs cuDNN's recurrent kernels in fp16 whatever dtype is "
                         "asked, so this would be fp16 without loss scaling; use --precision fp16 (scaled, the default "
                         "there) or fp32")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16,
            "auto": torch.float16 if device.type == "cuda" else None}[precision]


def kernel_problem(device: torch.device, dtype: torch.dtype, cell: str = "lstm") -> str | None:
    """Why `cell`'s fused kernel cannot train in `dtype` under autocast on `device`, or None when it can.

    Torch says what the CPU supports, but whether oneDNN (or cuDNN) has the kernel for this cell is only
    known by asking it: a forward and backward pass of a tiny module, once per process for each
    (device, dtype, cell). oneDNN's bf16 LSTM needs AVX-512; on an AVX2-only CPU (or under
    ONEDNN_MAX_CPU_ISA=AVX2) it cannot create the primitive, while GRU and RNN run everywhere.
    """
    return _probe(device.type, device.index, dtype, cell)


@functools.cache
def _probe(device_type: str, index: int | None, dtype: torch.dtype, cell: str) -> str | None:
    from .cells import get_cell

    device = torch.device(device_type, index) if index is not None else torch.device(device_type)
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's seeded streams stay untouched
            module = get_cell(cell).build(8, 8, 2, 0.0).to(device)
        x = torch.ones(2, 3, 8, device=device, requires_grad=True)
        with torch.autocast(device_type=device_type, dtype=dtype):
            out, _ = module(x)
        out.float().sum().backward()
    except (RuntimeError, AssertionError) as e:  # a kernel the library lacks; a torch built without the device
        return f"this {_describe(device)} cannot run the {cell.upper()} in {_name(dtype)} ({_why(device, dtype, e)})"
    return None


def _name(dtype: torch.dtype) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype).removeprefix("torch."))


def _describe(device: torch.device) -> str:
    if device.type == "cpu":
        return f"CPU ({torch.backends.cpu.get_cpu_capability()})"
    return f"{device.type} device"


def _why(device: torch.device, dtype: torch.dtype, error: Exception) -> str:
    """What the user can do about a failed probe: which CPUs have the kernel, or the library's own words."""
    if device.type == "cpu" and dtype == torch.bfloat16:
        capped = next((f"{k}={os.environ[k]}" for k in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA") if k in os.environ), "")
        return ("oneDNN has bf16 LSTM kernels for CPUs with AVX-512 only, such as Intel Xeon Skylake-SP and later "
                "or AMD Zen 4 and later" + (f", and {capped} keeps it below that" if capped else ""))
    return str(error).splitlines()[0][:160]


@contextlib.contextmanager
def plain_fp32(device: torch.device):
    """A context in which cuDNN computes in true fp32, as plain matrix products do by default: cuDNN's own
    default is TF32, so a fused step would round otherwise than the per-layer one (model.CharRNN.step)."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


def autocast(device: torch.device, dtype: torch.dtype | None):
    """A context that runs the forward pass in `dtype` (None: a no-op)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_device(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A host tensor on `device`; on a GPU through page-locked memory and without making the host wait for the copy."""
    if torch.device(device).type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, for timing only (never in the training loop's hot path)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
