"""Contrastive negatives from every process: CLIP's loss is over the global batch.

Each process gathers all processes' embeddings; its own slice keeps its graph (autograd through
`torch.distributed.nn.functional.all_gather`), so every process computes the same global loss
and the gradients its own images contribute to it.
"""

from __future__ import annotations

import torch


def world_size() -> int:
    return torch.distributed.get_world_size() if torch.distributed.is_available() and torch.distributed.is_initialized() else 1


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` from every process in rank order (itself when there is one)."""
    if world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)


@torch.no_grad()
def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate from every process, no gradient (ids, rows, embeddings for the bank)."""
    if world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    torch.distributed.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)
