"""`mvcap plan`: estimate a build's cost before launching it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from mvcap_build.cli.common import user_errors


def plan(
    pipeline: Annotated[
        Path, typer.Argument(help="Pipeline YAML (its `runner:` section gives shards and parallelism).")
    ],
    objects: Annotated[int, typer.Option(help="Objects the build will have.", min=1)] = 100_000,
    sample: Annotated[int, typer.Option(help="Objects to render and caption here to measure the rates.", min=1)] = 3,
    gpu: Annotated[
        str | None,
        typer.Option(
            help="Use the stored rates of this GPU kind for render and caption (h100); "
            "default: the rates measured here."
        ),
    ] = None,
    keep_sample: Annotated[
        Path | None, typer.Option(help="Keep the sample's scratch root in this folder (default: deleted).")
    ] = None,
) -> None:
    """Estimate GPU-hours, wall time at the runner's parallelism, disk, Hub size and shard counts
    for building PIPELINE over OBJECTS objects.

    It runs the pipeline's own stages, with its own settings, on about SAMPLE of its objects in a
    scratch root (a few minutes), splits each stage's time into a start cost and a cost per
    object, and scales that to OBJECTS with the shards of the `runner:` section. With `--gpu
    h100` render and caption use stored H100 rates instead (their source is printed).

    Example: mvcap plan pipelines/demo.yaml --objects 1000
    """
    from rich.console import Console
    from rich.table import Table

    from mvcap_build.errors import ConfigError
    from mvcap_build.pipeline.config import load_pipeline
    from mvcap_build.plan.estimate import estimate
    from mvcap_build.plan.rates import GPU_RATES
    from mvcap_build.plan.sample import measure

    with user_errors():
        config = load_pipeline(pipeline)
        if gpu is not None and gpu.lower() not in GPU_RATES:
            raise ConfigError(f"no stored rates for GPU {gpu!r}; known: {sorted(GPU_RATES)}")
        scratch = (
            Path(tempfile.mkdtemp(prefix="mvcap-plan-", dir=keep_sample))
            if keep_sample
            else Path(tempfile.mkdtemp(prefix="mvcap-plan-"))
        )
        try:
            measured = measure(config, sample, scratch, echo=lambda line: typer.echo(line, err=True))
        finally:
            if keep_sample is None:
                shutil.rmtree(scratch, ignore_errors=True)
        rates = GPU_RATES[gpu.lower()] if gpu else None
        result = estimate(config, measured, objects, rates)

    console = Console(width=max(120, Console().width))
    table = Table(
        title=f"mvcap plan: {objects:,} objects, ~{result.views:,.0f} views ({pipeline})", title_justify="left"
    )
    for column in (
        "stage",
        "shards",
        "at once",
        "objects/shard",
        "one shard",
        "wall",
        "device-hours",
        "disk",
        "rate from",
    ):
        table.add_column(column)
    for row in result.stages:
        table.add_row(
            row.stage,
            str(row.shards),
            str(row.at_once),
            f"{row.objects_per_shard:,.0f}",
            duration(row.shard_s),
            duration(row.wall_s) + (f" ± {duration(row.wall_sd_s)}" if row.wall_sd_s else ""),
            f"{row.device_hours:,.2f} {row.device}",
            size(row.disk_bytes),
            row.basis,
        )
    table.add_row("launch", "", "", "", "", duration(result.launcher_s), "", "", "its own start, measured here")
    total = duration(result.wall_s) + (f" ± {duration(result.wall_sd_s)}" if result.wall_sd_s else "")
    table.add_row("total", "", "", "", "", total, "", size(result.disk_bytes), "")
    console.print(table)
    console.print(
        f"Hub upload (export less mvcap/): {size(result.hub_bytes)}; "
        f"sample: {measured.total_objects:,} objects listed, {measured.views_per_object:.1f} views each"
    )
    console.print(
        "±: one standard error from how much the sampled objects' costs differed; "
        "sample more objects (--sample) to narrow it"
    )
    for stage, why in measured.skipped.items():
        console.print(f"{stage}: not estimated: {why}")
    if rates is not None:
        console.print(f"stored rates: {rates.source}")


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"
