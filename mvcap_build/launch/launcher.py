"""`mvcap launch`: the stages of a pipeline file, in order, as shards on a runner.

For each stage: the shards without a `done` marker are submitted (jobs a previous launch left
queued or running are waited for instead), launch waits for them, then reads their markers.
Every shard done: the next stage starts. Otherwise launch says which shards failed and why, and
stops; nothing of a later stage is submitted, so nothing waits forever on a failed dependency.
The user fixes the cause and runs the same command again: only the unfinished shards run.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mvcap_build.dataset.atomic import atomic_write_text
from mvcap_build.dataset.layout import DatasetRoot
from mvcap_build.launch.container import container_name, in_image
from mvcap_build.launch.markers import StageMarkers
from mvcap_build.launch.process import ShardSpec, shard_command
from mvcap_build.launch.runners import Runner, ShardEnd, make_runner
from mvcap_build.launch.stages import (
    LaunchStage,
    launch_stages,
    resolved_pipeline,
    resolved_pipeline_path,
    runner_of,
    save_resolved_pipeline,
)
from mvcap_build.pipeline.config import PipelineConfig
from mvcap_build.pipeline.stage import RunOptions


@dataclass
class StageReport:
    stage: str
    num_shards: int
    done: int = 0
    failed: list[str] = field(default_factory=list)  # one line per shard that did not finish
    unit_failures: Counter = field(default_factory=Counter)  # reason -> units, over the shards
    units_done: int = 0
    units_attempted: int = 0

    @property
    def finished(self) -> bool:
        return not self.failed and self.done == self.num_shards

    @property
    def all_units_failed(self) -> bool:
        return self.units_attempted > 0 and self.units_done == 0


def state_path(root: Path) -> Path:
    return Path(root) / "launch" / "state.json"


def read_state(root: Path) -> dict:
    try:
        return json.loads(state_path(root).read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def launch(
    config: PipelineConfig,
    *,
    dry_run: bool = False,
    options: RunOptions | None = None,
    echo: Callable[[str], None] = print,
) -> list[StageReport]:
    options = options or RunOptions()
    stages = launch_stages(config)
    runner_config = runner_of(config)
    root_path = Path(config.root).resolve()
    text = resolved_pipeline(config, stages)
    for stage in stages:
        if stage.sized_by:
            echo(
                f"{stage.name}: {stage.num_shards} shard(s): {stage.sized_by}. Set runner.stages.{stage.name}.shards "
                "to choose (`mvcap plan` measures the rates)."
            )
    if dry_run:
        runner = make_runner(runner_config, root_path)
        echo(f"dry run: nothing is submitted or written. Runner: {runner_config.kind}; root: {root_path}")
        pipeline_file = resolved_pipeline_path(root_path, text)
        for stage in stages:
            markers = StageMarkers(DatasetRoot(root_path), stage.name, stage.generation, stage.num_shards)
            todo = _todo(stage, markers, options)
            echo(
                f"\n{stage.name} (generation {stage.generation}): "
                f"{stage.num_shards - len(todo)} of {stage.num_shards} shard(s) done"
            )
            if todo:
                echo(
                    runner.describe(
                        stage,
                        [_spec(DatasetRoot(root_path), stage, shard, pipeline_file, options, runner) for shard in todo],
                    )
                )
        return []

    root = DatasetRoot(root_path).ensure_writable()
    pipeline_file = save_resolved_pipeline(root.path, text)
    state = {"pipeline": str(pipeline_file), "runner": runner_config.kind, "stages": {}}
    previous = read_state(root.path)
    reports = []
    runner = make_runner(runner_config, root.path)
    try:
        for stage in stages:
            report = _run_stage(runner, root, stage, pipeline_file, options, previous, state, echo)
            reports.append(report)
            if not report.finished:
                echo(
                    f"{stage.name}: stopping here; later stages were not submitted. Fix what the lines above say, "
                    "then run the same `mvcap launch` again: only unfinished shards run."
                )
                break
            if report.all_units_failed:
                echo(
                    f"{stage.name}: every unit it tried failed (reasons in {root.path / 'failures' / stage.name}); "
                    "later stages have nothing to build on"
                )
                break
    finally:
        runner.close()
    return reports


def _todo(stage: LaunchStage, markers: StageMarkers, options: RunOptions) -> list[int]:
    """Shards to run: without a `done` marker, or all of them when asked to redo or retry units
    (the stage itself then skips what is committed)."""
    if options.redo.value != "none" or options.retry_failed:
        return list(range(stage.num_shards))
    done = markers.done()
    return [shard for shard in range(stage.num_shards) if shard not in done]


def _spec(
    root: DatasetRoot, stage: LaunchStage, shard: int, pipeline_file: Path, options: RunOptions, runner: Runner
) -> ShardSpec:
    extra: tuple[str, ...] = ()
    if options.redo.value != "none":
        extra += ("--redo", options.redo.value)
    if options.retry_failed:
        extra += ("--retry-failed",)
    log = root.logs(stage.name, shard, stage.num_shards) / "launch.log"
    timeout = stage.resources.time_min * 60 if stage.resources.time_min and not runner.enforces_time_limit else None
    gpus = stage.resources.gpus or 0
    command = shard_command(stage.python, pipeline_file, stage.name, shard, stage.num_shards, gpus=gpus, extra=extra)
    stop: tuple[str, ...] = ()
    if stage.resources.image:
        wrapped = in_image(
            command,
            image=stage.resources.image,
            config=runner.config.container,
            root=root.path,
            settings=stage.config,
            name=container_name(root.path, stage.name, shard, stage.num_shards),
            gpus=gpus,
        )
        command, stop = wrapped.command, wrapped.stop
    return ShardSpec(
        stage=stage.name,
        shard=shard,
        num_shards=stage.num_shards,
        command=command,
        cwd=os.getcwd(),
        log=str(log),
        timeout_s=timeout,
        pipeline=str(pipeline_file),
        redo=options.redo.value,
        retry_failed=options.retry_failed,
        stop=stop,
    )


def _run_stage(
    runner: Runner,
    root: DatasetRoot,
    stage: LaunchStage,
    pipeline_file: Path,
    options: RunOptions,
    previous: dict,
    state: dict,
    echo: Callable[[str], None],
) -> StageReport:
    markers = StageMarkers(root, stage.name, stage.generation, stage.num_shards)
    report = StageReport(stage.name, stage.num_shards)
    todo = _todo(stage, markers, options)
    old = previous.get("stages", {}).get(stage.name, {})
    old_jobs = {int(k): v for k, v in old.get("jobs", {}).items()} if old.get("generation") == stage.generation else {}
    adopted = runner.alive({shard: job for shard, job in old_jobs.items() if shard in todo}) if old_jobs else {}
    to_submit = [shard for shard in todo if shard not in adopted]
    jobs = {shard: old_jobs[shard] for shard in range(stage.num_shards) if shard in old_jobs}
    if todo:
        for shard in to_submit:
            markers.clear_failed(shard)
        if adopted:
            echo(f"{stage.name}: waiting for {len(adopted)} shard(s) a previous launch left running: {sorted(adopted)}")
            runner.adopt(stage, adopted)
        if to_submit:
            specs = [_spec(root, stage, shard, pipeline_file, options, runner) for shard in to_submit]
            jobs |= runner.submit(stage, specs)
            echo(f"{stage.name}: submitted {len(to_submit)} of {stage.num_shards} shard(s) ({runner.kind})")
        state["stages"][stage.name] = {"generation": stage.generation, "num_shards": stage.num_shards, "jobs": jobs}
        _save_state(root, state)
        ends = runner.wait(stage, markers.has_marker, echo)
        for shard in todo:
            _judge(stage, shard, markers, ends.get(shard), root, report)
    state["stages"][stage.name] = {"generation": stage.generation, "num_shards": stage.num_shards, "jobs": jobs}
    _save_state(root, state)
    _count_units(stage, markers, report)
    for line in report.failed:
        echo(line)
    echo(_headline(report) + ("" if todo else " (before this launch)"))
    return report


def _judge(
    stage: LaunchStage, shard: int, markers: StageMarkers, end: ShardEnd | None, root: DatasetRoot, report: StageReport
) -> None:
    marker = markers.read(shard)
    log = root.logs(stage.name, shard, stage.num_shards) / "launch.log"
    log = root.relative(log) if log.exists() else "none yet (the job never started the shard: see the scheduler's log)"
    where = f"{stage.name} shard {shard}/{stage.num_shards}"
    if marker is not None and marker.status == "done":
        return
    if marker is not None:
        lines = marker.line.strip().splitlines() or ["(no message)"]
        message = "\n    ".join(lines[:8] + (["..."] if len(lines) > 8 else []))
        kind = (
            "bad input or settings (exit 2), not resubmitted"
            if marker.exit_code == 2
            else f"an error (exit {marker.exit_code})"
        )
        report.failed.append(f"{where} failed with {kind}:\n    {message}\n  log: {log}")
        return
    how = end.how if end is not None else "never ran"
    job = f" (job {end.job})" if end is not None and end.job and end.job != "local" else ""
    report.failed.append(f"{where} ended without finishing{job}: {how}; its committed units are kept\n  log: {log}")


def _count_units(stage: LaunchStage, markers: StageMarkers, report: StageReport) -> None:
    for marker in markers.all().values():
        if marker.status != "done":
            continue
        report.done += 1
        summary = marker.summary
        failed = summary.get("failed") or {}
        report.unit_failures.update(failed)
        report.units_done += int(summary.get("done", 0))
        report.units_attempted += int(summary.get("done", 0)) + sum(failed.values())


def _headline(report: StageReport) -> str:
    failures = sum(report.unit_failures.values())
    units = f"; {failures} unit(s) in its failure ledger" if failures else ""
    not_done = report.num_shards - report.done
    tail = f", {not_done} not done" if not_done else ""
    return f"{report.stage}: {report.done} of {report.num_shards} shard(s) done{tail}{units}"


def _save_state(root: DatasetRoot, state: dict) -> None:
    atomic_write_text(state_path(root.path), json.dumps(state, indent=1, sort_keys=True))
