"""Pure functions from predictions and embeddings to the numbers in the report.

Accuracies are percentages (as in the OVT and CLIP papers), with the counts beside them so a
reader can recompute them exactly.
"""

from __future__ import annotations

import math

import numpy as np

TOP_K = 5


def topk_predictions(logits, k: int = TOP_K):
    """(n, min(k, classes)) class indices, best first: `torch.topk`, as the original evaluation."""
    return logits.topk(min(k, logits.shape[1]), dim=1).indices


def hits(top, targets) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: is the target the top-1 prediction, is it among the top-k."""
    top, targets = np.asarray(top), np.asarray(targets)
    return top[:, 0] == targets, (top == targets[:, None]).any(axis=1)


def accuracy(hit1: np.ndarray, hit5: np.ndarray) -> dict:
    """Counts and percentages; None (not 0) where there is nothing to count."""
    n = int(len(hit1))
    c1, c5 = int(np.sum(hit1)), int(np.sum(hit5))
    return {
        "n": n,
        "top1": 100.0 * c1 / n if n else None,
        "top5": 100.0 * c5 / n if n else None,
        "top1_correct": c1,
        "top5_correct": c5,
    }


def wrap_azimuth(azimuth_deg: np.ndarray) -> np.ndarray:
    """Degrees from the front, in [-180, 180)."""
    return (np.asarray(azimuth_deg, dtype=float) + 180.0) % 360.0 - 180.0


def azimuth_bins(width: float) -> list[dict]:
    """Bins centred on 0, w, 2w, ...: bin k holds azimuths in [k*w - w/2, k*w + w/2) (mod 360)."""
    count = round(360.0 / width)
    return [{"centre": k * width, "lo": k * width - width / 2, "hi": k * width + width / 2} for k in range(count)]


def azimuth_bin_index(azimuth_deg: np.ndarray, width: float) -> np.ndarray:
    count = round(360.0 / width)
    return (np.floor(((np.asarray(azimuth_deg, dtype=float) % 360.0) + width / 2) / width).astype(int)) % count


def elevation_bins(width: float) -> list[dict]:
    """Bins from -90: [-90, -90 + w), ..., the last one closed at 90 (and possibly narrower)."""
    count = math.ceil(180.0 / width - 1e-9)
    return [
        {
            "lo": -90.0 + k * width,
            "hi": min(-90.0 + (k + 1) * width, 90.0),
            "centre": (-90.0 + k * width + min(-90.0 + (k + 1) * width, 90.0)) / 2,
        }
        for k in range(count)
    ]


def elevation_bin_index(elevation_deg: np.ndarray, width: float) -> np.ndarray:
    """Elevations outside [-90, 90] (not produced by our cameras) land in the end bins."""
    count = math.ceil(180.0 / width - 1e-9)
    index = np.floor((np.asarray(elevation_deg, dtype=float) + 90.0) / width).astype(int)
    return np.clip(index, 0, count - 1)


def canonical_mask(
    azimuth_deg: np.ndarray, elevation_deg: np.ndarray, elevation_band: tuple[float, float], azimuth_half_width: float
) -> np.ndarray:
    lo, hi = elevation_band
    elevation = np.asarray(elevation_deg, dtype=float)
    return (elevation >= lo) & (elevation <= hi) & (np.abs(wrap_azimuth(azimuth_deg)) <= azimuth_half_width)


def binned_accuracy(bins: list[dict], index: np.ndarray, hit1: np.ndarray, hit5: np.ndarray) -> list[dict]:
    """Each bin with the accuracy of the samples whose index is its position (empty bins kept)."""
    return [{**b, **accuracy(hit1[index == k], hit5[index == k])} for k, b in enumerate(bins)]


def mean_cosine_to_centre(embeddings, groups: list[np.ndarray]) -> dict:
    """Per object with 2+ views: mean cosine of its (normalised) view embeddings to their
    normalised mean; then the mean over objects. 1.0 would be perfect invariance."""
    import torch.nn.functional as F

    per_object = []
    for rows in groups:
        if len(rows) < 2:
            continue
        views = embeddings[rows]
        centre = F.normalize(views.mean(dim=0), dim=-1)
        per_object.append(float((views @ centre).mean()))
    return {"mean_cosine_to_centre": float(np.mean(per_object)) if per_object else None, "objects": len(per_object)}


def centre_contrast(embeddings, groups: list[np.ndarray]) -> dict:
    """Invariance net of collapse. Per object with 2+ views: the mean cosine of its (normalised)
    views to their own normalised mean, and to the normalised mean of every view given (the global
    centre); then means over objects. A model that maps every image near one point has a high
    `mean_cosine_to_centre` but an `own_minus_global` near 0; views that gather by object and
    objects that stay apart give a large one."""
    import torch.nn.functional as F

    centre = F.normalize(embeddings.mean(dim=0), dim=-1)
    own, to_global = [], []
    for rows in groups:
        if len(rows) < 2:
            continue
        views = embeddings[rows]
        own.append(float((views @ F.normalize(views.mean(dim=0), dim=-1)).mean()))
        to_global.append(float((views @ centre).mean()))
    if not own:
        return {"own_centre": None, "global_centre": None, "own_minus_global": None, "objects": 0}
    return {
        "own_centre": float(np.mean(own)),
        "global_centre": float(np.mean(to_global)),
        "own_minus_global": float(np.mean(own) - np.mean(to_global)),
        "objects": len(own),
    }


def same_object_retrieval(embeddings, object_ids: np.ndarray, chunk: int | None = None) -> dict:
    """Each view (of an object with 2+ views) queries every other view by cosine.

    recall_at_1: % of queries whose nearest other view shows the same object.
    map: mean average precision with the object's other views as the relevant items (%).
    nearest: per view, the row of its nearest other view (-1 when there is no other view).
    """
    import torch

    n = embeddings.shape[0]
    chunk = chunk or max(1, 2**24 // max(n, 1))  # a chunk's similarity and rank matrices stay ~200 MB
    ids = torch.as_tensor(np.asarray(object_ids), device=embeddings.device)
    nearest = np.full(n, -1, dtype=np.int64)
    hit, precision = [], []
    for start in range(0, n, chunk):
        rows = torch.arange(start, min(start + chunk, n), device=embeddings.device)
        sims = embeddings[rows] @ embeddings.T
        sims[torch.arange(len(rows)), rows] = -float("inf")  # a view never retrieves itself
        if n > 1:
            nearest[start : start + len(rows)] = sims.argmax(dim=1).cpu().numpy()
        same = ids[rows][:, None] == ids[None, :]
        same[torch.arange(len(rows)), rows] = False
        positives = same.sum(dim=1)
        order = sims.argsort(dim=1, descending=True)
        relevant = same.gather(1, order).float()  # relevance in ranked order (self last, never relevant)
        ranks = torch.arange(1, n + 1, device=embeddings.device)
        ap = (relevant * relevant.cumsum(dim=1) / ranks).sum(dim=1) / positives.clamp(min=1)
        queries = positives > 0
        hit += same[torch.arange(len(rows)), sims.argmax(dim=1)][queries].cpu().tolist()
        precision += ap[queries].cpu().tolist()
    return {
        "recall_at_1": 100.0 * float(np.mean(hit)) if hit else None,
        "map": 100.0 * float(np.mean(precision)) if precision else None,
        "queries": len(hit),
        "nearest": nearest,
    }


def group_rows(object_keys: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Integer object ids (by first appearance) and the rows of each object."""
    ids: dict[str, int] = {}
    object_ids = np.array([ids.setdefault(key, len(ids)) for key in object_keys], dtype=np.int64)
    order = np.argsort(object_ids, kind="stable")
    starts = np.flatnonzero(np.diff(object_ids[order])) + 1
    return object_ids, np.split(order, starts) if len(order) else []
