"""The OVT objective: image-text contrastive + cross-viewpoint consistency on the hard views.

Each loss is a small module returning named terms; the training loop sums them and logs each.
Embeddings arrive L2-normalised; the hard views and anchors come from `mining.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mvcap_build.train.mining import Targets


class ContrastiveLoss(nn.Module):
    """Symmetric InfoNCE where other views of the same object are not negatives.

    Two views of one chair (and their near-identical captions) are not a mismatch; counting them
    as negatives would push viewpoints apart, the opposite of what OVT wants. So those
    off-diagonal same-object pairs are removed from the softmax (logit set to -inf).
    """

    def forward(
        self, image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, obj_ids: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        logits = logit_scale * image @ text.t()
        same_object = obj_ids[:, None] == obj_ids[None, :]
        off_diagonal = ~torch.eye(len(obj_ids), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(same_object & off_diagonal, float("-inf"))
        target = torch.arange(len(obj_ids), device=logits.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        return {"contrastive_loss": loss}


class ViewConsistencyLoss(nn.Module):
    """OVT's "min" step: pull each hard view toward its object's anchor (see `mining.py`).

    relu(1 - cos(view, anchor) + margin), averaged over the batch's hard views, times `weight`.
    The anchor is detached: a target, not a variable. With margin >= 0 the hinge never opens
    (a cosine is at most 1), so the margin shifts the value, not the gradient; it is kept because
    the paper's code has it (0.3).
    """

    def __init__(self, margin: float = 0.0, weight: float = 1.0):
        super().__init__()
        self.margin, self.weight = margin, weight

    def forward(self, image: torch.Tensor, targets: Targets) -> dict[str, torch.Tensor]:
        if not targets.hard.any():  # no hard view in this batch: nothing to pull
            return {"consistency_loss": image.sum() * 0.0}
        cosine = (image[targets.hard] * targets.anchors[targets.hard]).sum(-1)
        return {"consistency_loss": self.weight * F.relu(1.0 - cosine + self.margin).mean()}
