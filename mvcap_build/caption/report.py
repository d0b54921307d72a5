"""How consistent the captions of a root are: per object and overall, how many views name the
category, how alike an object's captions are across its views (mean pairwise sentence-embedding
similarity), how many tries they took, and the gate failures by reason.

Run on two roots (e.g. the same views captioned with the category-guided and the plain prompt),
it measures MVCap's claim that guided prompts keep the category consistent across viewpoints.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from mvcap_build.caption.gates import Gates, names_category
from mvcap_build.dataset import DatasetRoot, FailureLedger, read_caption_manifest, read_objects


def caption_report(root: DatasetRoot, gates: Gates) -> dict[str, Any]:
    objects = read_objects(root)
    per_object: dict[str, dict[str, Any]] = {}
    for path in root.caption_manifests():
        manifest = read_caption_manifest(path)
        category = objects[manifest.key].category if manifest.key in objects else ""
        texts = [row.caption for row in manifest.rows]
        per_object[manifest.key] = {
            "category": category,
            "views": len(texts),
            "naming_category": sum(names_category(t, category, gates.config.synonyms) for t in texts)
            / max(1, len(texts)),
            "cross_view_similarity": _mean_pairwise_similarity(gates, texts),
            "mean_tries": float(np.mean([row.tries for row in manifest.rows])) if texts else 0.0,
            "models": sorted({f"{row.backend}:{row.model}" for row in manifest.rows}),
            "prompts": sorted({row.prompt_name for row in manifest.rows}),
        }
    failures = Counter(entry.reason for entry in FailureLedger(root, "caption"))
    values = list(per_object.values())

    def mean(name: str) -> float | None:
        scores = [v[name] for v in values if v[name] is not None]
        return round(float(np.mean(scores)), 4) if scores else None

    return {
        "root": str(root.path),
        "objects": len(values),
        "views": sum(v["views"] for v in values),
        "naming_category": mean("naming_category"),
        "cross_view_similarity": mean("cross_view_similarity"),
        "mean_tries": mean("mean_tries"),
        "gate_failures": dict(failures.most_common()),
        "prompts": sorted({p for v in values for p in v["prompts"]}),
        "models": sorted({m for v in values for m in v["models"]}),
        "per_object": per_object,
    }


def _mean_pairwise_similarity(gates: Gates, texts: list[str]) -> float | None:
    if len(texts) < 2:
        return None
    vectors = gates.embed(texts)
    similarity = vectors @ vectors.T
    n = len(texts)
    return round(float((similarity.sum() - n) / (n * (n - 1))), 4)
