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
        [sys.executable, str(REPO / "benchmarks" / "ovt_experiment.py"), "--root", str(root), "--per-category", "3",
         "--views", "8", "--seeds", "2", "--steps", "4", "--pretrain-steps", "4"],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((root / "results" / "results.json").read_text())
    table = (root / "results" / "results.md").read_text()
    for regime in ("all-captioned", "extreme-uncaptioned"):
        runs, summary = report["runs"][regime], report["summary"][regime]
        assert sorted(runs) == ["base", "ovt", "plain"] and all(len(runs[m]) == 2 for m in runs)
        for key in ("all", "canonical", "extreme", "invariance", "retrieval"):
            differences = [runs["ovt"][s][key] - runs["plain"][s][key] for s in runs["ovt"]]
            assert summary["ovt - plain"][key]["mean"] == pytest.approx(sum(differences) / 2)
        assert f"| {regime} | ovt - plain |" in table
        assert report["settings"]["chosen_weight"][regime] in (0.05, 0.1, 0.25, 0.5, 1.0)
    # The uncaptioned regime really has no text for non-canonical training views.
    import pyarrow.parquet as pq

    shard = next((root / "export-extreme-uncaptioned" / "data").glob("train-*.parquet"))
    captions = pq.read_table(shard, columns=["caption", "azimuth_deg", "elevation_deg"]).to_pylist()
    assert any(r["caption"] == "" for r in captions) and any(r["caption"] for r in captions)
