"""Several processes, one model: torch.distributed, launched by torchrun.

    torchrun --nproc_per_node=4 -m charrnn train corpus.txt ...

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and the rendezvous address) in each process's
environment; from_env() joins the process group they describe: NCCL between GPUs, gloo between
CPU processes. Every rank trains on its own share of the parallel TBPTT streams and
DistributedDataParallel averages the gradients, so N ranks with --batch-size B train like one
process with N x B streams. Without torchrun this is a world of one and nothing here does anything.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import UsageError
from ..model.runtime import pick_device


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 alone writes checkpoints, metrics and progress."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    def device(self, name: str) -> torch.device:
        """This process's device for --device `name`: under torchrun, a CUDA device is its LOCAL_RANK's GPU."""
        device = pick_device(name)
        return torch.device("cuda", self.local_rank) if self.parallel and device.type == "cuda" else device


SOLO = World()


def from_env(device_name: str) -> World:
    """The world torchrun described (or a world of one); joins the process group (for --device `device_name`)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SOLO
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    device = world.device(device_name)
    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise UsageError(f"LOCAL_RANK {world.local_rank} but only {torch.cuda.device_count()} GPUs are visible; "
                             "start at most one process per GPU (torchrun --nproc_per_node)")
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise UsageError(f"--device {device.type}: several processes need CUDA GPUs or CPUs; use --device cuda or cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return world


def shutdown(world: World, finished: bool = True) -> None:
    """Leave the process group. After a normal end (`finished`) every rank first waits for the others, and
    objects holding gloo work are freed while the interpreter is fully alive: a rank that tears its
    group down while a peer still talks to it, or leaves gloo's threads to the interpreter's
    finalisation, can abort with SIGABRT at exit."""
    if world.parallel and dist.is_initialized():
        gc.collect()
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def all_sum(world: World, values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums over all ranks (float64)."""
    if not world.parallel:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_max(world: World, values: list[float], device: torch.device) -> list[float]:
    """Element-wise maxima over all ranks, so every rank takes the same decision (stop, evaluate)."""
    if not world.parallel:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def gather(world: World, obj) -> list:
    """Every rank's `obj`, in rank order, on every rank (plain data and CPU tensors)."""
    if not world.parallel:
        return [obj]
    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def from_main(world: World, obj):
    """Rank 0's `obj` on every rank."""
    if not world.parallel:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    if world.parallel:
        dist.barrier()
