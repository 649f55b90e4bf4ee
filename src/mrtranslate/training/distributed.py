"""Multi-process data-parallel training with torch.distributed (started by ``torchrun``).

Each process computes the loss on its share of the global batch; gradients are averaged with one
all-reduce per optimiser step (the same arithmetic as DistributedDataParallel), so N processes
with a per-process batch B/N give the weights of one process with batch B.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the group when started by torchrun (WORLD_SIZE > 1): gloo on CPU, nccl on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def average_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """All-reduce and average the gradients of ``params`` across processes (one flat buffer)."""
    if not info.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def any_rank(flag: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """``flag`` (a 0-dim 0/1 float tensor) set on every rank if it is set on any: all ranks
    then skip the same update. Asynchronous on the device (no host synchronisation)."""
    if info.enabled:
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return flag


def broadcast_parameters(module: torch.nn.Module, info: DistInfo) -> None:
    """Make every process start from rank 0's parameters and buffers."""
    if not info.enabled:
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` (picklable) on every process, so that all ranks decide alike."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
