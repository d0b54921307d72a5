"""Hard-view mining during real training: hard views are ranked within one snapshot of the model,
so the consistency loss keeps pulling as many rows as the paper's mining gives, however fast the
model moves."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from test_train_ovt import fast_config, write_export  # noqa: E402
from torch_fixtures import _datasets_cache, _one_thread  # noqa: E402, F401

from mvcap_build.train import trainer  # noqa: E402
from mvcap_build.train.mining import BankMiner  # noqa: E402

N_OBJECTS, N_VIEWS, P, V, K = 12, 8, 4, 4, 2


@pytest.fixture(scope="module")
def eight_view_export(tmp_path_factory):
    """More views per object (8) than a batch draws (4): the bank's other views shape the mining."""
    return write_export(tmp_path_factory.mktemp("export8"), n_objects=N_OBJECTS, n_views=N_VIEWS)


@pytest.mark.parametrize(("mining", "passes"), [("full_pass", 7), ("bank", 1)])
def test_hard_rows_per_batch_stay_near_k_per_object_through_training(
    eight_view_export, tmp_path, monkeypatch, mining, passes
):
    """Each object's K hard views are K of its N; a batch draws V of them, so it holds K x P x V / N
    hard rows on average (4 here). Ranking the batch's fresh embeddings against older ones gave
    K x P in the first epoch and then far fewer while the model moved (stale entries won)."""
    real_fill, calls = trainer.fill_bank, []
    monkeypatch.setattr(trainer, "fill_bank", lambda *a, **k: calls.append(1) or real_fill(*a, **k))
    out = tmp_path / "run"
    trainer.train_ovt(
        fast_config(
            mining=mining,
            objects_per_batch=P,
            views_per_object=V,
            hard_views=K,
            anchor="knn",
            margin=0.3,
            lr=3e-2,
            max_steps=40,
            save_every=1000,
        ),
        eight_view_export,
        out,
    )
    hard = [json.loads(line)["hard_rows"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    expected = K * P * V / N_VIEWS
    assert len(hard) == 40
    assert 0.75 * expected <= np.mean(hard) <= 1.25 * expected, hard
    assert 0.75 * expected <= np.mean(hard[20:]) <= 1.25 * expected, hard  # late too, the model moved
    # full_pass: one pass per epoch of N_OBJECTS x N_VIEWS / (P x V) = 6 steps; bank: one at the start.
    assert len(calls) == passes


def test_bank_targets_ignore_the_batch_fresh_embeddings():
    """Anchors and hard views come from the bank alone: the batch's embeddings (later weights,
    train mode) never enter the ranking beside the bank's."""
    torch.manual_seed(0)
    groups = [np.arange(o * 6, o * 6 + 6) for o in range(4)]
    miner = BankMiner(groups, 24, 8, k=2, method="knn", neighbors=3, update=False)
    miner.fill(torch.arange(24), torch.nn.functional.normalize(torch.randn(24, 8), dim=-1))
    rows, objects = torch.tensor([0, 1, 6, 7, 12, 13]), torch.tensor([0, 0, 1, 1, 2, 2])
    a = miner.targets(torch.randn(6, 8), rows, objects)
    b = miner.targets(100 * torch.randn(6, 8), rows, objects)  # wildly other fresh embeddings
    assert torch.equal(a.hard, b.hard) and torch.equal(a.anchors, b.anchors)
    views = miner.bank.float().view(4, 6, 8)
    hard_in_bank = set(_hard_rows(views, groups, 2))  # mined over the bank's 6 views of each object
    assert a.hard.tolist() == [r in hard_in_bank for r in rows.tolist()]
    # A row the bank has not seen is never hard.
    miner.seen[0] = False
    assert not miner.targets(torch.randn(6, 8), rows, objects).hard[0]


def _hard_rows(views, groups, k):
    from mvcap_build.train.mining import mine

    _, hard = mine(
        torch.nn.functional.normalize(views, dim=-1), torch.ones(views.shape[:2], dtype=torch.bool), k, "knn", 3
    )
    return [int(groups[o][i]) for o, i in hard.nonzero().tolist()]
