"""Where and how the arithmetic runs: device, CPU threads, mixed precision, compilation.

Every command that computes goes through here, so the choices are made in one place and reported.
"""

from __future__ import annotations

import contextlib
import os

import torch

from .errors import UsageError

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


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype to autocast matrix products to, or None for plain fp32.

    auto: fp16 on a CUDA GPU (with loss scaling, see train): cuDNN's LSTM has long supported fp16
    under autocast and runs it on tensor cores, while its bf16 path has a history of missing kernels
    across versions; fp32 elsewhere (CPUs without bf16 units run bf16 slower than fp32). bf16 is
    there to ask for by name.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r} is not known; use {', '.join(PRECISIONS)}")
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else None
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise UsageError("--precision fp16 needs a CUDA GPU (loss scaling); use bf16 or fp32 here")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """A context that runs the forward pass in `dtype` (None: a no-op)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, for timing only (never in the training loop's hot path)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
