"""The shards of the latest launch, stage by stage: done, failed, running, not started.

Markers say done and failed. Whether a shard without one is running, queued or gone is the
scheduler's to say: Slurm is asked (one squeue call) when it answers here; otherwise such a
shard counts as "submitted" (running, or killed without a marker).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mvcap_build.dataset.layout import DatasetRoot
from mvcap_build.launch.launcher import read_state
from mvcap_build.launch.markers import StageMarkers
from mvcap_build.launch.squeue import ALIVE, UNKNOWN, job_states


@dataclass
class StageShards:
    stage: str
    num_shards: int
    done: int = 0
    failed: list[int] = field(default_factory=list)
    running: int = 0  # the scheduler says running
    queued: int = 0  # the scheduler says pending
    submitted: int = 0  # no marker, the scheduler not asked (or not reachable)
    ended: list[int] = field(default_factory=list)  # the scheduler no longer has it, and no marker: killed or lost

    @property
    def not_started(self) -> int:
        return (
            self.num_shards
            - self.done
            - len(self.failed)
            - self.running
            - self.queued
            - self.submitted
            - len(self.ended)
        )


def shard_status(root: DatasetRoot) -> tuple[str, list[StageShards]]:
    """(runner kind, per stage) of the latest launch on this root; ("", []) if it was never launched."""
    state = read_state(root.path)
    if not state.get("stages"):
        return "", []
    runner = state.get("runner", "")
    rows = []
    slurm_states = _slurm_states(state) if runner == "slurm" else None
    for name, stage in state["stages"].items():
        markers = StageMarkers(root, name, stage["generation"], int(stage["num_shards"]))
        row = StageShards(name, markers.num_shards)
        found = markers.all()
        jobs = {int(k): v for k, v in stage.get("jobs", {}).items()}
        for shard in range(markers.num_shards):
            marker = found.get(shard)
            if marker is not None and marker.status == "done":
                row.done += 1
            elif marker is not None:
                row.failed.append(shard)
            elif shard in jobs:
                job_state = slurm_states.get(jobs[shard]) if slurm_states is not None else None
                if slurm_states is None:
                    row.submitted += 1
                elif job_state == "RUNNING":
                    row.running += 1
                elif job_state in ALIVE:
                    row.queued += 1
                else:
                    row.ended.append(shard)
        rows.append(row)
    return runner, sorted(rows, key=lambda r: _order(r.stage))


def _order(stage: str) -> int:
    from mvcap_build.registry import STAGES

    return list(STAGES).index(stage) if stage in STAGES else len(STAGES)


def _slurm_states(state: dict) -> dict[str, str] | None:
    """Job id -> state from squeue, or None when Slurm cannot be asked from here."""
    jobs = [
        job
        for stage in state["stages"].values()
        for job in stage.get("jobs", {}).values()
        if job not in ("local", "ray")
    ]
    states = job_states(jobs, timeout_s=20)
    return None if not states or UNKNOWN in states.values() else states


def describe(root_path: Path) -> list[str]:
    """Lines for `mvcap status`."""
    runner, rows = shard_status(DatasetRoot(root_path))
    if not rows:
        return []
    lines = [f"shards of the latest `mvcap launch` (runner {runner}):"]
    for row in rows:
        parts = [f"{row.done}/{row.num_shards} done"]
        if row.running:
            parts.append(f"{row.running} running")
        if row.queued:
            parts.append(f"{row.queued} queued")
        if row.submitted:
            parts.append(f"{row.submitted} submitted, no marker yet")
        if row.failed:
            parts.append(f"{len(row.failed)} failed (shards {_few(row.failed)}; the reason is in its marker and log)")
        if row.ended:
            parts.append(f"{len(row.ended)} ended without finishing (shards {_few(row.ended)}: cancelled or lost)")
        if row.not_started:
            parts.append(f"{row.not_started} not started")
        lines.append(f"  {row.stage}: " + ", ".join(parts))
    if any(row.failed or row.ended for row in rows):
        lines.append("  run the same `mvcap launch` again to rerun only the unfinished shards")
    return lines


def _few(shards: list[int], limit: int = 8) -> str:
    text = ", ".join(str(s) for s in shards[:limit])
    return text + (f", ... ({len(shards) - limit} more)" if len(shards) > limit else "")
