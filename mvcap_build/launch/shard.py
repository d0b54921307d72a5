"""One shard of one stage, as every runner starts it (`mvcap run-shard`), ending in its marker.

This is the only place that writes markers. It runs the stage exactly as the stage command
would, then commits `done` with the summary; a user error (bad input, broken config, stale
units) commits `failed` and exits 2, so launch reports it instead of resubmitting it; a bug
commits `failed` with exit 1 and keeps its traceback in the shard's log. A process killed from
outside commits nothing: the shard is simply not done, and its committed units stay.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from pydantic import BaseModel

from mvcap_build.dataset import DatasetRoot
from mvcap_build.errors import ConfigError, UserError
from mvcap_build.launch.markers import Marker, StageMarkers
from mvcap_build.launch.stages import launch_stages
from mvcap_build.pipeline.config import load_pipeline
from mvcap_build.pipeline.stage import RunOptions, Stage, Summary


def job_id() -> str:
    """The scheduler's name for the job running this shard, when there is one."""
    if array := os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("MVCAP_LAUNCH_JOB", "")


def is_main_process() -> bool:
    """Under `accelerate launch` every process runs this; only rank 0 writes the marker."""
    return os.environ.get("RANK", "0") == "0"


def run_shard(
    pipeline_file: Path,
    stage_name: str,
    shard: int,
    num_shards: int,
    *,
    options: RunOptions | None = None,
    echo: Callable[[str], None] = print,
    make_stage: Callable[[BaseModel, RunOptions], Stage] | None = None,
) -> Summary:
    """Run the shard and commit its marker; exceptions go on to the caller after `failed` is written."""
    from mvcap_build.pipeline.runner import run_stage

    config = load_pipeline(pipeline_file)
    stages = {stage.name: stage for stage in launch_stages(config)}
    if stage_name not in stages:
        raise ConfigError(f"{pipeline_file} has no `{stage_name}:` section; it has {list(stages)}")
    stage = stages[stage_name]
    if num_shards != stage.num_shards:
        raise ConfigError(f"{stage_name} is split into {stage.num_shards} shards in {pipeline_file}, not {num_shards}")
    if not 0 <= shard < num_shards:
        raise ConfigError(f"shard {shard} is not one of 0..{num_shards - 1}")
    root = DatasetRoot(config.root).ensure_writable()
    markers = StageMarkers(root, stage_name, stage.generation, num_shards)
    started, clock = _now(), time.monotonic()

    def commit(status: str, exit_code: int, line: str, summary: dict | None = None) -> None:
        if is_main_process():
            markers.write(
                Marker(
                    stage=stage_name,
                    generation=stage.generation,
                    shard=shard,
                    num_shards=num_shards,
                    status=status,
                    exit_code=exit_code,
                    line=line,
                    summary=summary or {},
                    host=socket.gethostname(),
                    job=job_id(),
                    started=started,
                    ended=_now(),
                    seconds=round(time.monotonic() - clock, 3),
                )
            )

    try:
        summary = run_stage(
            stage_name, root, stage.config, shard=shard, num_shards=num_shards, options=options, make_stage=make_stage
        )
        echo(summary.line())
    except UserError as error:
        commit("failed", 2, str(error))
        raise
    except Exception as error:
        commit("failed", 1, f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=8)}")
        raise
    commit("done", 0, summary.line(), _summary_fields(summary))
    return summary


def _summary_fields(summary: Summary) -> dict:
    fields = asdict(summary)
    fields["failed"] = dict(summary.failed)
    return fields


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
