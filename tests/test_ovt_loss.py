"""The OVT losses and the schedule on hand-made numbers, where the right answer is known."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from mvcap_build.train.loss import ContrastiveLoss, ViewConsistencyLoss  # noqa: E402
from mvcap_build.train.mining import BankMiner, BatchMiner, Targets, anchors_of, knn_weights, mine  # noqa: E402
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


def _all(views):
    return torch.ones(views.shape[:2], dtype=torch.bool)


def test_mining_picks_the_views_farthest_from_the_anchor():
    # Object 0 (mean ~9 degrees): 60 is the outlier, then -20; object 1 (mean ~185): 200, then 179.
    views = torch.stack([_views(0, 2, 60, -20), _views(180, 200, 181, 179)])
    anchors, hard = mine(views, _all(views), k=2)
    assert torch.allclose(anchors.norm(dim=-1), torch.ones(2))
    assert hard.tolist() == [[False, False, True, True], [False, True, False, True]]
    assert mine(views, _all(views), k=1)[1].nonzero()[:, 1].tolist() == [2, 1]


def test_knn_weights_follow_the_papers_formula():
    """Each view weighs 1 / mean cosine to its nearest others, normalised: computed by hand."""
    torch.manual_seed(3)
    views = F.normalize(torch.randn(1, 1, 5) + 0.4 * torch.randn(1, 7, 5), dim=-1)  # one object's views: alike
    got = knn_weights(views, _all(views), neighbors=3)[0]
    sim = views[0] @ views[0].t()
    expected = []
    for i in range(7):
        others = sorted((sim[i, j].item() for j in range(7) if j != i), reverse=True)[:3]
        expected.append(1 / (sum(others) / 3))
    expected = torch.tensor(expected) / sum(expected)
    assert torch.allclose(got, expected, atol=1e-5)
    # Padding is ignored: the same object with two invalid slots appended weighs the same.
    padded = torch.cat([views, torch.zeros(1, 2, 5)], dim=1)
    valid = torch.tensor([[True] * 7 + [False] * 2])
    assert torch.allclose(knn_weights(padded, valid, 3)[0, :7], expected, atol=1e-5)
    assert knn_weights(padded, valid, 3)[0, 7:].abs().sum() == 0


def test_knn_anchor_discounts_a_crowd_of_similar_views():
    # Five views crowd around 0 degrees, two lie at 90: the mean sits near the crowd; the kNN
    # centre gives the lone views more weight, so it moves toward them.
    views = _views(0, 1, -1, 2, -2, 90, 88)[None]
    mean = anchors_of(views, _all(views), "mean", 3)[0]
    knn = anchors_of(views, _all(views), "knn", 3)[0]
    angle = lambda v: math.degrees(math.atan2(v[1].item(), v[0].item()))  # noqa: E731
    assert angle(knn) > angle(mean) + 3


def test_consistency_is_a_hinge_on_the_hard_views_toward_a_detached_anchor():
    image = _views(0, 2, 60, -20, 180, 200, 181, 179).requires_grad_(True)
    targets = BatchMiner(k=1, method="mean", neighbors=5, views_per_object=4).targets(
        image, torch.arange(8), torch.arange(2).repeat_interleave(4)
    )
    terms = ViewConsistencyLoss(margin=0.3, weight=2.0)(image, targets)
    terms["consistency_loss"].backward()
    has_grad = image.grad.abs().sum(-1) > 0
    # Only the mined views (2 and 5) receive gradient: the anchor is a target, not a variable.
    assert has_grad.tolist() == [False, False, True, False, False, True, False, False]
    gaps = [
        1 - _views(*hard)[0] @ F.normalize(_views(*group).mean(0), dim=0) + 0.3
        for hard, group in (((60,), (0, 2, 60, -20)), ((200,), (180, 200, 181, 179)))
    ]
    assert terms["consistency_loss"].item() == pytest.approx(2.0 * (gaps[0] + gaps[1]).item() / 2)
    none = Targets(targets.anchors, torch.zeros(8, dtype=torch.bool))
    assert ViewConsistencyLoss()(image, none)["consistency_loss"].item() == 0.0


def _brute_force_hard_rows(embeddings, groups, k, neighbors):
    """The paper's per-object loop: kNN-weighted centre of all views, then the k least similar."""
    hard = set()
    for rows in groups:
        views = embeddings[rows]
        sim = views @ views.t()
        weights = []
        for i in range(len(rows)):
            others = sorted((sim[i, j].item() for j in range(len(rows)) if j != i), reverse=True)[:neighbors]
            weights.append(1 / (sum(others) / len(others)))
        centre = F.normalize((torch.tensor(weights)[:, None] * views).sum(0), dim=0)
        cosine = [(views[i] @ centre).item() for i in range(len(rows))]
        hard |= {int(rows[i]) for i in sorted(range(len(rows)), key=cosine.__getitem__)[:k]}
    return hard


def test_bank_mining_equals_the_full_pass_when_the_model_does_not_change():
    """Batches refreshing the bank as they pass choose, after an epoch, the same hard views as a
    full pass over every view (and as the paper's loop), while seeing only V of each object's views."""
    import numpy as np

    from mvcap_build.train.data import sample_batch

    torch.manual_seed(0)
    groups = [np.arange(o * 6, o * 6 + 6) for o in range(8)]  # 8 objects x 6 views
    centres = torch.randn(8, 16).repeat_interleave(6, dim=0)
    embeddings = F.normalize(centres + 0.5 * torch.randn(48, 16), dim=-1)  # a model that does not change
    settings = dict(k=2, method="knn", neighbors=3)
    passing = BankMiner(groups, 48, 16, update=True, **settings)
    full = BankMiner(groups, 48, 16, update=False, **settings)
    full.fill(torch.arange(48), embeddings)
    for step in range(40):  # batches of 4 objects x 3 views refresh the bank
        rows, objects = (torch.from_numpy(a) for a in sample_batch(groups, 4, 3, seed=1, index=step))
        passing.observe(rows, embeddings[rows])
    assert passing.seen.all()
    rows, objects = (torch.from_numpy(a) for a in sample_batch(groups, 4, 3, seed=1, index=99))
    a, b = passing.targets(embeddings[rows], rows, objects), full.targets(embeddings[rows], rows, objects)
    assert torch.equal(a.hard, b.hard) and torch.allclose(a.anchors, b.anchors, atol=1e-3)
    expected = _brute_force_hard_rows(embeddings, groups, 2, 3)
    assert {int(r) for r, h in zip(rows, a.hard) if h} == {int(r) for r in rows if int(r) in expected}
    # In-batch mining, by contrast, only sees the batch's 3 views of each object.
    in_batch = BatchMiner(views_per_object=3, **settings).targets(embeddings[rows], rows, objects)
    assert in_batch.hard.sum() == 8  # 2 of the 3 drawn views per object, whatever the others are


def test_schedule_warms_up_then_decays_to_the_floor():
    kw = dict(base_lr=1.0, warmup_steps=10, max_steps=110)
    assert lr_at(0, **kw) == pytest.approx(0.1)
    assert lr_at(9, **kw) == pytest.approx(1.0)
    assert lr_at(60, **kw) == pytest.approx(0.5)  # cosine midpoint
    assert lr_at(110, **kw) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(60, schedule="linear", **kw) == pytest.approx(0.5)
    assert lr_at(110, schedule="linear", min_lr_ratio=0.1, **kw) == pytest.approx(0.1)
    assert lr_at(100, schedule="constant", **kw) == 1.0
