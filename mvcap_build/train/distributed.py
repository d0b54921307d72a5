"""Contrastive negatives from every process: CLIP's loss is over the global batch.

Each process gathers all processes' embeddings; its own slice keeps its graph, so every process
computes the same global loss, and its images get the gradient of that loss summed over the
processes (W times the one-process gradient, which DDP's averaging over W processes undoes).
"""

from __future__ import annotations

import torch


def world_size() -> int:
    return (
        torch.distributed.get_world_size()
        if torch.distributed.is_available() and torch.distributed.is_initialized()
        else 1
    )


class _GatherWithGrad(torch.autograd.Function):
    """all_gather forward; backward sums every process's gradient of the gathered tensor and
    keeps this process's slice (each process's loss uses every slice)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.rows = torch.distributed.get_rank(), len(tensor)
        return gather(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        torch.distributed.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` from every process in rank order (itself when there is one); the
    gradient reaches each process's own slice. Every process must pass the same shape."""
    if world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)


@torch.no_grad()
def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate from every process, no gradient (ids, rows, embeddings for the bank)."""
    if world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    torch.distributed.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)
