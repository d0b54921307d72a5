"""The bundled experiment runs end to end (tiny settings) and its table says what its runs measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_experiment_runs_end_to_end_and_reports_paired_differences(tmp_path):
    root = tmp_path / "experiment"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "ovt_experiment.py"),
            "--root",
            str(root),
            "--per-category",
            "4",
            "--views",
            "8",
            "--seeds",
            "2",
            "--validation-seeds",
            "2",
            "--steps",
            "4",
            "--pretrain-steps",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((root / "results" / "results.json").read_text())
    table = (root / "results" / "results.md").read_text()
    for regime in ("all-captioned", "extreme-uncaptioned"):
        runs, summary = report["runs"][regime], report["summary"][regime]
        assert sorted(runs) == ["base", "ovt", "plain"] and all(len(runs[m]) == 2 for m in runs)
        for key in ("all", "canonical", "extreme", "all_80", "invariance", "own_minus_global", "map", "retrieval"):
            differences = [runs["ovt"][s][key] - runs["plain"][s][key] for s in runs["ovt"]]
            assert summary["ovt - plain"][key]["mean"] == pytest.approx(sum(differences) / 2)
        for figures in (f for by_seed in runs.values() for f in by_seed.values()):
            for key in ("all", "canonical", "extreme", "all_80", "map", "retrieval"):
                assert 0.0 <= figures[key] <= 100.0, (key, figures)
            # Net of collapse: the cosine to its own centre less that to the global one, both in [-1, 1].
            assert -1.0 <= figures["own_minus_global"] <= figures["invariance"] + 1.0
            assert figures["invariance"] <= 1.0 + 1e-6
        assert f"| {regime} | ovt - plain |" in table
        # Weight 0 is a candidate, scored over the validation seeds; the chosen weight is the best mean.
        validation = report["settings"]["validation"][regime]
        assert list(validation) == ["0.0", "0.05", "0.1", "0.25", "0.5", "1.0"]
        assert all(len(v["per_seed"]) == 2 for v in validation.values())
        chosen = report["settings"]["chosen_weight"][regime]
        assert validation[str(chosen)]["mean"] == max(v["mean"] for v in validation.values())
        if chosen == 0.0:  # then ovt is plain, run for run
            assert runs["ovt"] == runs["plain"]
    assert report["settings"]["validation_seeds"] == [1000, 1001] and report["settings"]["seeds"] == 2
    for title in ("all views, 80 templates", "own − global centre", "same-object mAP"):
        assert title in table
    # Splits stratified by category: 4 objects per category at 0.6 / 0.2 / 0.2 -> 2 / 1 / 1.
    import collections

    import pyarrow.parquet as pq

    rows = [
        r
        for shard in sorted((root / "export" / "data").glob("*.parquet"))
        for r in pq.read_table(shard, columns=["key", "category", "split"]).to_pylist()
    ]
    per_category = collections.Counter((r["category"], r["split"]) for r in {r["key"]: r for r in rows}.values())
    categories = {c for c, _ in per_category}
    assert len(categories) == 10
    assert all([per_category[c, s] for s in ("train", "validation", "test")] == [2, 1, 1] for c in categories)
    # The uncaptioned regime really has no text for non-canonical training views.
    shard = next((root / "export-extreme-uncaptioned" / "data").glob("train-*.parquet"))
    captions = pq.read_table(shard, columns=["caption", "azimuth_deg", "elevation_deg"]).to_pylist()
    assert any(r["caption"] == "" for r in captions) and any(r["caption"] for r in captions)
