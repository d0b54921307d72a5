"""Slurm job states from one `squeue` call: what the Slurm runner polls and `mvcap status` shows.
Never sacct: it needs accounting, and polling it is what overloads a controller."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable

# States of a job that may still run (or is cleaning up).
ALIVE = frozenset(
    {
        "PENDING",
        "RUNNING",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "CONFIGURING",
        "COMPLETING",
        "SUSPENDED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "RESV_DEL_HOLD",
        "STOPPED",
    }
)
GONE = "GONE"  # squeue no longer knows the job (finished longer ago than MinJobAge)
UNKNOWN = "UNKNOWN"  # squeue could not be asked


def job_states(jobs: Iterable[str], timeout_s: float = 60.0) -> dict[str, str]:
    """Job id ("123" or array task "123_4") -> its state, GONE, or UNKNOWN for all when squeue fails."""
    jobs = sorted(set(jobs))
    if not jobs:
        return {}
    arrays = sorted({job.split("_")[0] for job in jobs})
    try:
        result = subprocess.run(
            ["squeue", "-h", "-r", "--states=all", "-j", ",".join(arrays), "-o", "%i %T"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except (OSError, subprocess.TimeoutExpired):
        return dict.fromkeys(jobs, UNKNOWN)
    if result.returncode != 0:
        # squeue refuses the whole list when none of the ids exists any more
        return dict.fromkeys(jobs, GONE if "Invalid job id" in result.stderr else UNKNOWN)
    states = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return {job: states.get(job, GONE) for job in jobs}
