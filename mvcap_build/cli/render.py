"""`mvcap render`: render objects from many viewpoints with Blender."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mvcap_build.cli.common import (
    ConfigFile,
    Keys,
    KeysFile,
    Limit,
    NumShards,
    Quiet,
    RedoChoice,
    RedoOption,
    RetryFailed,
    Shard,
    run_options,
    run_stage_command,
    stage_config,
    user_errors,
)
from mvcap_build.cli.defaults import with_default
from mvcap_build.render.config import LocalSourceConfig, RenderConfig


def render(
    root: Annotated[Path, typer.Argument(help="Dataset root (created if missing).")],
    config: ConfigFile = None,
    source: Annotated[
        str | None,
        typer.Option(
            help=with_default(
                "Object source: demo | local | objaverse (its uids or LVIS categories come from --config).",
                RenderConfig,
                "source.kind",
            )
        ),
    ] = None,
    folder: Annotated[Path | None, typer.Option(help="local source: folder of glb/gltf/obj/ply/stl/fbx files.")] = None,
    categories_csv: Annotated[
        Path | None,
        typer.Option(
            help="local source: CSV `file,category` naming the files to render "
            "(default FOLDER/categories.csv; without one, every mesh file under FOLDER). "
            "A file with no category (empty, `unknown`) is named from its file name, "
            "`office_chair_03.glb` -> `office chair`, and the summary says which."
        ),
    ] = None,
    up_axis: Annotated[
        str | None,
        typer.Option(
            help=with_default(
                "local source: the files' up axis: "
                "auto (by format: glTF, OBJ, PLY Y-up; STL Z-up; FBX as the file says) | Z | Y | X | -Z | -Y | -X. "
                "A CSV column up_axis overrides it per file.",
                LocalSourceConfig,
                "up_axis",
            )
        ),
    ] = None,
    per_category: Annotated[
        int | None,
        typer.Option(help=with_default("demo source: objects per category.", RenderConfig, "source.per_category")),
    ] = None,
    num_views: Annotated[
        int | None, typer.Option(help=with_default("Views per object.", RenderConfig, "views.num_views"))
    ] = None,
    distribution: Annotated[
        str | None,
        typer.Option(
            help=with_default("Viewpoints: hemisphere | sphere | orbit | random.", RenderConfig, "views.distribution")
        ),
    ] = None,
    framing: Annotated[
        str | None,
        typer.Option(
            help=with_default(
                "fit: each object's bounding sphere fills the view (times --margin) | fixed: one --distance for all.",
                RenderConfig,
                "views.framing",
            )
        ),
    ] = None,
    margin: Annotated[
        float | None,
        typer.Option(
            help=with_default(
                "fit framing: room around the object's bounding sphere (1 = touching the frame).",
                RenderConfig,
                "views.margin",
            )
        ),
    ] = None,
    distance: Annotated[
        float | None,
        typer.Option(help="fixed framing: camera distance in unit-cube units (default: the unit cube fills the view)."),
    ] = None,
    lighting: Annotated[
        str | None,
        typer.Option(
            help=with_default(
                "Light preset: neutral (every side alike, no shadows) | key_sun | random.",
                RenderConfig,
                "lighting.preset",
            )
        ),
    ] = None,
    resolution: Annotated[
        int | None, typer.Option(help=with_default("Image width = height in pixels.", RenderConfig, "resolution"))
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(help=with_default("CYCLES | BLENDER_EEVEE | BLENDER_WORKBENCH.", RenderConfig, "engine")),
    ] = None,
    samples: Annotated[
        int | None, typer.Option(help=with_default("Cycles samples per pixel.", RenderConfig, "samples"))
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help=with_default("auto | optix | cuda | cpu (auto: best GPU, else CPU).", RenderConfig, "device")
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help=with_default("Blender worker processes.", RenderConfig, "workers"))
    ] = None,
    timeout_s: Annotated[
        float | None, typer.Option(help=with_default("Per-object deadline in seconds.", RenderConfig, "timeout_s"))
    ] = None,
    recycle_after: Annotated[
        int | None,
        typer.Option(
            help=with_default("Restart each Blender worker after this many objects.", RenderConfig, "recycle_after")
        ),
    ] = None,
    png_on_host: Annotated[
        bool | None,
        typer.Option(
            "--png-on-host/--no-png-on-host",
            help=with_default(
                "Compress PNGs on the host while Blender renders on, or inside Blender.", RenderConfig, "png_on_host"
            ),
        ),
    ] = None,
    kernel_cache: Annotated[
        Path | None,
        typer.Option(help="Folder for compiled Cycles GPU kernels, shared by the workers (keep it across runs)."),
    ] = None,
    redo: RedoOption = RedoChoice.none,
    retry_failed: RetryFailed = False,
    limit: Limit = None,
    keys: Keys = None,
    keys_file: KeysFile = None,
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
            "source.kind": source or ("local" if folder or (config is None and (categories_csv or up_axis)) else None),
            "source.folder": str(folder) if folder else None,
            "source.categories_csv": str(categories_csv) if categories_csv else None,
            "source.up_axis": up_axis,
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
            typer.secho(
                "no --source given: rendering the embedded demo objects (procedural, offline); use "
                "--source local --folder DIR, or --source objaverse with --config, for real assets",
                err=True,
            )
        run_stage_command(
            "render",
            root,
            settings,
            shard=shard,
            num_shards=num_shards,
            options=run_options(redo, retry_failed, quiet, limit=limit, keys=keys, keys_file=keys_file),
        )
