"""Running under torchrun: one process per device, DistributedDataParallel, gloo on CPU
and NCCL on CUDA.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous variables; without them
a run is a world of one and nothing here touches torch.distributed. Every rank reads
the data and the checkpoint itself (a shared file system is assumed for --out, as usual
with torchrun); only rank 0 writes. Sums of losses and counts are all-reduced, so the
metrics rank 0 writes cover every rank's share. `CNNDSL_PROCESS_GROUP=1` under torchrun
with one process joins a process group of one anyway, so that the DDP and NCCL path runs
on a machine of one GPU (benchmarks/gpu.py).
"""

from __future__ import annotations

import atexit
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    grouped: bool = False  # a process group of one (CNNDSL_PROCESS_GROUP=1): the DDP path with one rank

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1 or self.grouped


def world_from_env() -> World:
    """The world torchrun's variables describe (a world of one without them)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    grouped = size == 1 and os.environ.get("CNNDSL_PROCESS_GROUP") == "1" and "RANK" in os.environ
    if size <= 1 and not grouped:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")), grouped)


def join(device_kind: str) -> World:
    """The world this process is in, joining the process group when there is more than one."""
    world = world_from_env()
    if not world.distributed:
        return world
    size = world.size
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", size))
    if device_kind == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_size))
    return world


def leave(world: World, orderly: bool = True) -> None:
    """Leave the process group. `orderly` (every rank got here): wait for the others
    first, since a rank that tears gloo down early can abort the rest; after a failure
    that may be this rank's alone, waiting could hang, so it does not."""
    if world.distributed and dist.is_initialized():
        if orderly:
            dist.barrier()
        dist.destroy_process_group()


def end_process(world: World) -> None:
    """End a process that trained in a process group, once its outputs are written,
    without the interpreter's teardown.

    destroy_process_group leaves the group alive while DistributedDataParallel's reducer
    holds it, so gloo's worker threads are torn down during interpreter finalization; a
    rank can then abort ("terminate called without an active exception", SIGABRT), rarely
    and at random, after a run that succeeded. Everything is on disk by now (writes are
    atomic and the loggers closed), so the exit handlers run (data-loader workers, compile
    workers, a zipped package's unpacked specs), the streams are flushed and the process
    leaves before finalization.
    """
    if world.distributed:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def sum_all(world: World, values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums over the ranks."""
    if not world.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def any_rank(world: World, flag: bool, device: torch.device) -> bool:
    """Whether `flag` is set on some rank (a stop request must stop all ranks at once)."""
    if not world.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def sync_buffers(world: World, module: torch.nn.Module) -> None:
    """Rank 0's buffers (batch-norm statistics) everywhere, so that evaluation and the
    saved weights agree across ranks."""
    if world.distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer, 0)


def gather_digests(world: World, digest: str, device: torch.device) -> list[str]:
    """Every rank's hex SHA-256, gathered as bytes (no pickled objects on the wire)."""
    if not world.distributed:
        return [digest]
    mine = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8, device=device)
    out = [torch.empty_like(mine) for _ in range(world.size)]
    dist.all_gather(out, mine)
    return [bytes(t.cpu().tolist()).hex() for t in out]
