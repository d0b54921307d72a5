"""Hard-view mining, OVT's "max" step: per object an anchor, and the K views farthest from it.

The anchor is the mean of the object's view embeddings, or OVT's kNN-weighted centre: each view
weighted by 1 / its mean cosine to its `neighbors` nearest other views, so a crowd of similar
viewpoints does not drag the centre toward itself. The hard views are the K with the lowest
cosine to the anchor; the consistency loss pulls only those.

Where the embeddings come from (`mining`):
- `full_pass` (default), as the paper: a no-grad pass in eval mode over every view at each epoch
  start fills a bank, which batches then do not change. Anchors and hard views are ranked within
  that one snapshot of the model, so each object's K hard views are fixed for the epoch and a
  batch holding V of an object's N views holds about K x V / N of them.
- `bank`: one such pass at the start, then every view's embedding as last seen in training,
  refreshed as batches pass (after their step): no further pass, but an object's entries come
  from different steps, so the stalest lean toward the hard slots.
- `batch`: the views in the current batch only (no memory, no pass): K of the batch's V views.

Ranking never mixes the batch's fresh embeddings with the bank's: while the model moves, older
entries look like outliers and would win the hard slots without carrying any gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mvcap_build.errors import CheckpointError

_EPS = 1e-6
_MIN_COSINE = 0.1  # a view's weight is at most 10x that of a view identical to its neighbours


def knn_weights(views: torch.Tensor, valid: torch.Tensor, neighbors: int) -> torch.Tensor:
    """(P, N, D) unit vectors, (P, N) mask -> (P, N) weights summing to 1 per object.

    A view's weight is 1 / its mean cosine to its `neighbors` nearest other valid views (fewer
    when the object has fewer). Views of one object are alike (CLIP cosines of 0.6-0.95); a mean
    below `_MIN_COSINE` (where the paper's formula would explode or turn negative) is raised to it.
    """
    n = views.shape[1]
    similarity = views @ views.transpose(1, 2)
    excluded = ~(valid[:, :, None] & valid[:, None, :]) | torch.eye(n, dtype=torch.bool, device=views.device)
    similarity = similarity.masked_fill(excluded, float("-inf"))
    k = max(1, min(neighbors, n - 1))
    nearest = similarity.topk(k, dim=-1).values  # (P, N, k), -inf where there are fewer neighbours
    counted = torch.isfinite(nearest)
    mean = nearest.masked_fill(~counted, 0).sum(-1) / counted.sum(-1).clamp_min(1)
    weights = 1.0 / mean.clamp_min(_MIN_COSINE)
    weights = torch.where(counted.any(-1), weights, torch.ones_like(weights))  # a lone view: weight 1
    weights = weights.masked_fill(~valid, 0)
    return weights / weights.sum(-1, keepdim=True).clamp_min(_EPS)


def anchors_of(views: torch.Tensor, valid: torch.Tensor, method: str, neighbors: int) -> torch.Tensor:
    """(P, N, D), (P, N) -> (P, D) unit anchors: the (kNN-)weighted mean of each object's views."""
    if method == "knn":
        weights = knn_weights(views, valid, neighbors)
    else:
        weights = valid.float() / valid.sum(-1, keepdim=True).clamp_min(1)
    return F.normalize((weights[..., None] * views).sum(1), dim=-1)


@torch.no_grad()
def mine(
    views: torch.Tensor, valid: torch.Tensor, k: int, method: str = "mean", neighbors: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, N, D) unit vectors, (P, N) mask -> anchors (P, D) and a (P, N) mask of each object's
    k views least similar to its anchor (all its views when it has k or fewer)."""
    anchors = anchors_of(views, valid, method, neighbors)
    cosine = (views * anchors[:, None, :]).sum(-1).masked_fill(~valid, float("inf"))
    k = min(k, views.shape[1])
    lowest = cosine.topk(k, dim=1, largest=False).indices
    hard = torch.zeros_like(valid).scatter_(1, lowest, True) & valid
    return anchors, hard


@dataclass
class Targets:
    """Per batch row: its object's anchor (detached) and whether the row is one of the hard views."""

    anchors: torch.Tensor  # (B, D)
    hard: torch.Tensor  # (B,) bool


class BatchMiner:
    """Anchors and hard views from the batch alone (rows come as P objects x V views)."""

    def __init__(self, k: int, method: str, neighbors: int, views_per_object: int):
        self.k, self.method, self.neighbors, self.views = k, method, neighbors, views_per_object

    def observe(self, rows: torch.Tensor, embeddings: torch.Tensor) -> None:
        pass

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        pass

    def targets(self, embeddings: torch.Tensor, rows: torch.Tensor, objects: torch.Tensor) -> Targets:
        views = embeddings.detach().view(-1, self.views, embeddings.shape[-1])
        valid = torch.ones(views.shape[:2], dtype=torch.bool, device=views.device)
        anchors, hard = mine(views, valid, self.k, self.method, self.neighbors)
        return Targets(anchors.repeat_interleave(self.views, dim=0), hard.flatten())


class BankMiner:
    """Anchors and hard views among all of an object's views, from a bank of their embeddings.

    `groups[o]` lists the dataset rows of object o. The bank holds one embedding per row (half
    precision, on the training device: 4.6M views x 512 dims is 4.7 GB); rows never seen yet
    are left out of their object's anchor.
    """

    def __init__(
        self,
        groups: list[np.ndarray],
        num_rows: int,
        dim: int,
        *,
        k: int,
        method: str,
        neighbors: int,
        update: bool = True,
        device: torch.device | str = "cpu",
    ):
        self.k, self.method, self.neighbors, self.update = k, method, neighbors, update
        self.bank = torch.zeros(num_rows, dim, dtype=torch.float16, device=device)
        self.seen = torch.zeros(num_rows, dtype=torch.bool, device=device)
        width = max(len(g) for g in groups)
        table = np.full((len(groups), width), -1, dtype=np.int64)
        for o, rows in enumerate(groups):
            table[o, : len(rows)] = rows
        self.rows_of = torch.from_numpy(table).to(device)  # (objects, widest) rows, -1 padded

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Saved with each checkpoint, so a resumed run mines exactly as an uninterrupted one."""
        return {"bank": self.bank.cpu(), "seen": self.seen.cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state["bank"].shape != self.bank.shape:
            raise CheckpointError(
                f"the saved embedding bank is {tuple(state['bank'].shape)}, this export needs "
                f"{tuple(self.bank.shape)}: resume on the export it was trained on, or use a new output folder"
            )
        self.bank.copy_(state["bank"])
        self.seen.copy_(state["seen"])

    @property
    def filled(self) -> bool:
        return bool(self.seen.any())

    def fill(self, rows: torch.Tensor, embeddings: torch.Tensor) -> None:
        rows = rows.to(self.bank.device)
        self.bank[rows] = embeddings.detach().to(self.bank.device, torch.float16)
        self.seen[rows] = True

    def observe(self, rows: torch.Tensor, embeddings: torch.Tensor) -> None:
        if self.update:
            self.fill(rows, embeddings)

    def targets(self, embeddings: torch.Tensor, rows: torch.Tensor, objects: torch.Tensor) -> Targets:
        """Anchors and hard views of the batch's objects, ranked among the bank's entries alone;
        `embeddings` only give the device and dtype. A row the bank has not seen is not hard."""
        device = embeddings.device
        unique, position = torch.unique(objects, return_inverse=True)
        table = self.rows_of[unique.to(self.rows_of.device)]  # (P, W)
        safe = table.clamp_min(0)
        views = self.bank[safe].to(device, embeddings.dtype)
        valid = ((table >= 0) & self.seen[safe]).to(device)
        anchors, hard = mine(F.normalize(views, dim=-1), valid, self.k, self.method, self.neighbors)
        match = (
            table.to(device)[position] == rows.to(device)[:, None]
        )  # (B, W): where each batch row sits in its object
        slot = match.float().argmax(1)
        return Targets(anchors[position], hard[position, slot] & match.any(1))
