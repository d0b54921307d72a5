"""The OVT losses and the schedule on hand-made numbers, where the right answer is known."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from mvcap_build.train.loss import ContrastiveLoss, OVTLoss, ViewConsistencyLoss  # noqa: E402
from mvcap_build.train.schedule import lr_at  # noqa: E402


def test_contrastive_does_not_count_other_views_of_the_object_as_negatives():
    # 2 objects x 2 views; both views of an object (and their captions) embed identically.
    a, b = F.normalize(torch.tensor([1.0, 0.0]), dim=0), F.normalize(torch.tensor([0.0, 1.0]), dim=0)
    emb = torch.stack([a, a, b, b])
    obj = torch.tensor([0, 0, 1, 1])
    scale = torch.tensor(100.0)
    masked = ContrastiveLoss()(emb, emb, scale, obj)["contrastive_loss"]
    # Plain InfoNCE sees the twin view as an equally good "negative": the loss cannot go below log 2.
    plain = ContrastiveLoss()(emb, emb, scale, torch.arange(4))["contrastive_loss"]
    assert plain.item() == pytest.approx(math.log(2), abs=1e-4)
    assert masked.item() < 1e-4


def test_contrastive_matches_infonce_over_the_unmasked_pairs():
    torch.manual_seed(0)
    image, text = F.normalize(torch.randn(6, 8), dim=-1), F.normalize(torch.randn(6, 8), dim=-1)
    obj = torch.tensor([0, 0, 0, 1, 1, 2])
    scale = torch.tensor(10.0)
    got = ContrastiveLoss()(image, text, scale, obj)["contrastive_loss"]

    def one_direction(logits):
        losses = []
        for i in range(6):
            keep = [j for j in range(6) if j == i or obj[j] != obj[i]]
            losses.append(-logits[i, i] + torch.logsumexp(logits[i, keep], dim=0))
        return torch.stack(losses).mean()

    logits = scale * image @ text.t()
    expected = (one_direction(logits) + one_direction(logits.t())) / 2
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def _views(*angles_deg):
    return torch.tensor([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in angles_deg])


def test_mining_picks_the_views_farthest_from_the_anchor():
    # Object 0 (mean ~9 degrees): 60 is the outlier, then -20; object 1 (mean ~185): 200, then 179.
    views = torch.stack([_views(0, 2, 60, -20), _views(180, 200, 181, 179)])
    anchors, hardest = ViewConsistencyLoss.mine(views, k=2)
    assert torch.allclose(anchors.norm(dim=-1), torch.ones(2))
    assert set(hardest[0].tolist()) == {2, 3}
    assert set(hardest[1].tolist()) == {1, 3}  # 200 is 15 degrees off the mean, 179 is 6
    assert ViewConsistencyLoss.mine(views, k=1)[1].flatten().tolist() == [2, 1]


def test_consistency_pulls_only_the_hard_views_toward_a_detached_anchor():
    image = _views(0, 2, 60, -20, 180, 200, 181, 179).requires_grad_(True)
    terms = ViewConsistencyLoss(hard_views=1, weight=2.0)(image, views_per_object=4)
    terms["consistency_loss"].backward()
    has_grad = image.grad.abs().sum(-1) > 0
    # Only the mined views (2 and 5) receive gradient: the anchor is a target, not a variable.
    assert has_grad.tolist() == [False, False, True, False, False, True, False, False]
    gaps = [1 - _views(*hard)[0] @ F.normalize(_views(*group).mean(0), dim=0)
            for hard, group in (((60,), (0, 2, 60, -20)), ((200,), (180, 200, 181, 179)))]
    assert terms["consistency_loss"].item() == pytest.approx(2.0 * (gaps[0] + gaps[1]).item() / 2)


def test_ovt_loss_returns_named_finite_terms():
    torch.manual_seed(1)
    image, text = F.normalize(torch.randn(8, 4), dim=-1), F.normalize(torch.randn(8, 4), dim=-1)
    terms = OVTLoss(hard_views=2, consistency_weight=0.5)(
        image, text, torch.tensor(14.3), torch.arange(2).repeat_interleave(4), 4
    )
    assert set(terms) == {"contrastive_loss", "consistency_loss"}
    assert all(torch.isfinite(v) for v in terms.values())


def test_schedule_warms_up_then_decays_to_the_floor():
    kw = dict(base_lr=1.0, warmup_steps=10, max_steps=110)
    assert lr_at(0, **kw) == pytest.approx(0.1)
    assert lr_at(9, **kw) == pytest.approx(1.0)
    assert lr_at(60, **kw) == pytest.approx(0.5)  # cosine midpoint
    assert lr_at(110, **kw) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(60, schedule="linear", **kw) == pytest.approx(0.5)
    assert lr_at(110, schedule="linear", min_lr_ratio=0.1, **kw) == pytest.approx(0.1)
    assert lr_at(100, schedule="constant", **kw) == 1.0
