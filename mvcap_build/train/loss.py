"""The OVT objective: image-text contrastive + cross-viewpoint consistency on the hardest views.

Each loss is a small module returning named terms; the training loop sums them and logs each.
Embeddings arrive L2-normalised, ordered as P objects x V views (row = object * V + view).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ContrastiveLoss(nn.Module):
    """Symmetric InfoNCE where other views of the same object are not negatives.

    Two views of one chair (and their near-identical captions) are not a mismatch; counting them
    as negatives would push viewpoints apart, the opposite of what OVT wants. So those
    off-diagonal same-object pairs are removed from the softmax (logit set to -inf).
    """

    def forward(self, image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor,
                obj_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = logit_scale * image @ text.t()
        same_object = obj_ids[:, None] == obj_ids[None, :]
        off_diagonal = ~torch.eye(len(obj_ids), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(same_object & off_diagonal, float("-inf"))
        target = torch.arange(len(obj_ids), device=logits.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        return {"contrastive_loss": loss}


class ViewConsistencyLoss(nn.Module):
    """Minimax hard-view mining: pull each object's k farthest views toward its anchor.

    max step (no grad): per object, the anchor is the mean of its view embeddings; the k views
    with the lowest cosine to it are the hardest viewpoints in this batch. Mining in-batch costs
    no extra pass over the data.
    min step: 1 - cosine(hard view, detached anchor), so the anchor is a target, not a moving one.
    """

    def __init__(self, hard_views: int, weight: float = 1.0):
        super().__init__()
        self.hard_views, self.weight = hard_views, weight

    @staticmethod
    def mine(views: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, V, D) embeddings -> anchors (P, D) and indices (P, k) of the farthest views."""
        with torch.no_grad():
            anchors = F.normalize(views.mean(dim=1), dim=-1)
            cosine = (views * anchors[:, None, :]).sum(-1)
            hardest = cosine.topk(k, dim=1, largest=False).indices
        return anchors, hardest

    def forward(self, image: torch.Tensor, views_per_object: int) -> dict[str, torch.Tensor]:
        views = image.view(-1, views_per_object, image.shape[-1])
        anchors, hardest = self.mine(views, self.hard_views)
        hard = views.gather(1, hardest[..., None].expand(-1, -1, views.shape[-1]))
        cosine = (hard * anchors[:, None, :]).sum(-1)
        return {"consistency_loss": self.weight * (1.0 - cosine).mean()}


class OVTLoss(nn.Module):
    """Both terms, as one dict of named losses."""

    def __init__(self, hard_views: int, consistency_weight: float):
        super().__init__()
        self.contrastive = ContrastiveLoss()
        self.consistency = ViewConsistencyLoss(hard_views, consistency_weight)

    def forward(self, image, text, logit_scale, obj_ids, views_per_object):
        return {
            **self.contrastive(image, text, logit_scale, obj_ids),
            **self.consistency(image, views_per_object),
        }
