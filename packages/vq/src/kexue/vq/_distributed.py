"""Thin wrappers over ``torch.distributed`` used for codebook synchronisation.

Every collective here is unconditional on data: callers invoke them on every rank in the same
order (a data-dependent collective taken by only some ranks is the root cause of the DDP hangs
reported against other VQ libraries, lucidrains/vector-quantize-pytorch#25 and #105).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["all_reduce_sum_", "broadcast_", "is_distributed", "rank", "world_size"]


def is_distributed() -> bool:
    """Whether a default process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """The default group's world size, or 1 outside ``torch.distributed``."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank in the default group, or 0 outside ``torch.distributed``."""
    return dist.get_rank() if is_distributed() else 0


def all_reduce_sum_(*tensors: torch.Tensor) -> None:
    """Sum ``tensors`` in place over all ranks with one collective (a flat fp32/fp64 buffer).

    A no-op outside ``torch.distributed``. Tensors must share a dtype.
    """
    if not is_distributed() or not tensors:
        return
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) != 1:
        raise ValueError(f"all_reduce_sum_ needs one dtype, got {sorted(map(str, dtypes))}")
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset : offset + n].view_as(t))
        offset += n


def broadcast_(*tensors: torch.Tensor, src: int = 0) -> None:
    """Broadcast ``tensors`` in place from rank ``src``; a no-op outside ``torch.distributed``."""
    if not is_distributed():
        return
    for t in tensors:
        dist.broadcast(t, src=src)
