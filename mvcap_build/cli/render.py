"""`mvcap render`: render objects from many viewpoints with Blender."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mvcap_build.cli.common import (
    ConfigFile,
    NumShards,
    Quiet,
    RedoOption,
    RedoChoice,
    RetryFailed,
    Shard,
    run_options,
    run_stage_command,
    stage_config,
    user_errors,
)


def render(
    root: Annotated[Path, typer.Argument(help="Dataset root (created if missing).")],
    config: ConfigFile = None,
    source: Annotated[Optional[str], typer.Option(help="Object source: demo | local | objaverse (its uids or LVIS categories come from --config). Default: demo.")] = None,
    folder: Annotated[Optional[Path], typer.Option(help="local source: folder of glb/gltf/obj/ply/stl/fbx files.")] = None,
    categories_csv: Annotated[Optional[Path], typer.Option(help="local source: CSV `file,category` (default FOLDER/categories.csv).")] = None,
    per_category: Annotated[Optional[int], typer.Option(help="demo source: objects per category.")] = None,
    num_views: Annotated[Optional[int], typer.Option(help="Views per object.")] = None,
    distribution: Annotated[Optional[str], typer.Option(help="Viewpoints: hemisphere | sphere | orbit | random.")] = None,
    framing: Annotated[Optional[str], typer.Option(help="fit: each object's bounding sphere fills the view (times --margin) | fixed: one --distance for all.")] = None,
    margin: Annotated[Optional[float], typer.Option(help="fit framing: room around the object's bounding sphere (1 = touching the frame).")] = None,
    distance: Annotated[Optional[float], typer.Option(help="fixed framing: camera distance in unit-cube units (default: the unit cube fills the view).")] = None,
    lighting: Annotated[Optional[str], typer.Option(help="Light preset: neutral (every side alike, no shadows) | key_sun | random.")] = None,
    resolution: Annotated[Optional[int], typer.Option(help="Image width = height in pixels.")] = None,
    engine: Annotated[Optional[str], typer.Option(help="CYCLES | BLENDER_EEVEE | BLENDER_WORKBENCH.")] = None,
    samples: Annotated[Optional[int], typer.Option(help="Cycles samples per pixel.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | optix | cuda | cpu (auto: best GPU, else CPU).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Blender worker processes.")] = None,
    timeout_s: Annotated[Optional[float], typer.Option(help="Per-object deadline in seconds.")] = None,
    recycle_after: Annotated[Optional[int], typer.Option(help="Restart each Blender worker after this many objects.")] = None,
    png_on_host: Annotated[Optional[bool], typer.Option("--png-on-host/--no-png-on-host", help="Compress PNGs on the host while Blender renders on (default), or inside Blender.")] = None,
    kernel_cache: Annotated[Optional[Path], typer.Option(help="Folder for compiled Cycles GPU kernels, shared by the workers (keep it across runs).")] = None,
    redo: RedoOption = RedoChoice.none,
    retry_failed: RetryFailed = False,
    shard: Shard = 0,
    num_shards: NumShards = 1,
    quiet: Quiet = False,
) -> None:
    """Render every object of a source from many viewpoints into ROOT/views.

    Each object is committed whole (RGBA PNGs + views.json with every camera and the fingerprint
    of the settings that made it); objects that cannot be imported or render empty go to
    ROOT/failures/render with the reason. Rerunning skips what is done, so a killed job resumes
    where it stopped. Changed settings (resolution, views, samples, ...) stop the run before any
    work and name what differs; `--redo stale` re-renders exactly those objects.

    Example: mvcap render data/fixtures --source local --folder ../shared/fixtures/meshes
    """
    with user_errors():
        overrides = {
            "source.kind": source or ("local" if folder else None),
            "source.folder": str(folder) if folder else None,
            "source.categories_csv": str(categories_csv) if categories_csv else None,
            "source.per_category": per_category,
            "views.num_views": num_views,
            "views.distribution": distribution,
            "views.framing": framing,
            "views.margin": margin,
            "views.distance": distance,
            "lighting.preset": lighting,
            "resolution": resolution,
            "engine": engine,
            "samples": samples,
            "device": device,
            "workers": workers,
            "timeout_s": timeout_s,
            "recycle_after": recycle_after,
            "png_on_host": png_on_host,
            "kernel_cache": str(kernel_cache) if kernel_cache else None,
        }
        settings = stage_config("render", config, overrides)
        if config is None and source is None and folder is None and settings.source.kind == "demo":
            typer.secho("no --source given: rendering the embedded demo objects (procedural, offline); use "
                        "--source local --folder DIR, or --source objaverse with --config, for real assets", err=True)
        run_stage_command("render", root, settings, shard=shard, num_shards=num_shards, options=run_options(redo, retry_failed, quiet))
