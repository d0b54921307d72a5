"""`mvcap render`: render objects from many viewpoints with Blender."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mvcap_build.cli.common import stage_config, user_errors

Root = Annotated[Path, typer.Argument(help="Dataset root (created if missing).")]


def render(
    root: Root,
    config: Annotated[Optional[Path], typer.Option(help="YAML with render settings (or a pipeline YAML: its `render:` section).")] = None,
    source: Annotated[Optional[str], typer.Option(help="Object source: demo | local.")] = None,
    folder: Annotated[Optional[Path], typer.Option(help="local source: folder of glb/gltf/obj/ply/stl/fbx files.")] = None,
    categories_csv: Annotated[Optional[Path], typer.Option(help="local source: CSV `file,category` (default FOLDER/categories.csv).")] = None,
    per_category: Annotated[Optional[int], typer.Option(help="demo source: objects per category.")] = None,
    num_views: Annotated[Optional[int], typer.Option(help="Views per object.")] = None,
    distribution: Annotated[Optional[str], typer.Option(help="Viewpoints: hemisphere | sphere | orbit | random.")] = None,
    resolution: Annotated[Optional[int], typer.Option(help="Image width = height in pixels.")] = None,
    engine: Annotated[Optional[str], typer.Option(help="CYCLES | BLENDER_EEVEE | BLENDER_WORKBENCH.")] = None,
    samples: Annotated[Optional[int], typer.Option(help="Cycles samples per pixel.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | optix | cuda | cpu (auto: best GPU, else CPU).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Blender worker processes.")] = None,
    timeout_s: Annotated[Optional[float], typer.Option(help="Per-object deadline in seconds.")] = None,
    recycle_after: Annotated[Optional[int], typer.Option(help="Restart each Blender worker after this many objects.")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Redo objects in the failure ledger.")] = False,
    shard: Annotated[int, typer.Option(help="This job's shard (e.g. $SLURM_ARRAY_TASK_ID).")] = 0,
    num_shards: Annotated[int, typer.Option(help="Number of shards the objects are split into.")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Render every object of a source from many viewpoints into ROOT/views.

    Each object is committed whole (RGBA PNGs + views.json with every camera); objects that
    cannot be imported or render empty go to ROOT/failures/render with the reason. Rerunning
    skips what is done, so a killed job resumes where it stopped.

    Example: mvcap render data/fixtures --source local --folder ../shared/fixtures/meshes
    """
    from mvcap_build.config_io import dump_yaml, validate
    from mvcap_build.dataset import DatasetRoot
    from mvcap_build.dataset.atomic import atomic_write_text
    from mvcap_build.render.config import RenderConfig
    from mvcap_build.render.stage import run_render

    with user_errors():
        overrides = {
            "source.kind": source or ("local" if folder else None),
            "source.folder": str(folder) if folder else None,
            "source.categories_csv": str(categories_csv) if categories_csv else None,
            "source.per_category": per_category,
            "views.num_views": num_views,
            "views.distribution": distribution,
            "resolution": resolution,
            "engine": engine,
            "samples": samples,
            "device": device,
            "workers": workers,
            "timeout_s": timeout_s,
            "recycle_after": recycle_after,
            "retry_failed": retry_failed or None,
        }
        cfg = validate(RenderConfig, stage_config(config, "render", overrides), "render config")
        dataset = DatasetRoot(root)
        atomic_write_text(dataset.run_config("render"), dump_yaml(cfg))
        summary = run_render(dataset, cfg, shard=shard, num_shards=num_shards, show_progress=not quiet)
        typer.echo(
            f"render: {summary.rendered} rendered, {summary.already_done} already done, "
            f"{sum(summary.failed.values())} failed {dict(summary.failed) or ''}, "
            f"{summary.skipped_failed} skipped (in ledger) of {summary.objects} objects in shard {shard}/{num_shards}"
        )
