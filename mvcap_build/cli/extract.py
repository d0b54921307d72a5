"""`mvcap extract`: multi-view captures (MVImgNet, IM3D, NeRF-synthetic folders) become views."""

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
from mvcap_build.extract.config import ExtractConfig


def extract(
    root: Annotated[Path, typer.Argument(help="Dataset root (created if missing).")],
    config: ConfigFile = None,
    source: Annotated[
        str | None, typer.Option(help="mvimgnet | im3d | nerf (any folder of NeRF-synthetic objects).")
    ] = None,
    folder: Annotated[
        Path | None,
        typer.Option(help="The captures: MVImgNet's root (`<category>/<instance>/`), or a folder of object folders."),
    ] = None,
    zips: Annotated[
        list[Path] | None,
        typer.Option("--zip", help="mvimgnet: a released zip part, read member by member (repeat for several)."),
    ] = None,
    num_frames: Annotated[
        int | None,
        typer.Option(
            help=with_default(
                "Views per instance (K), spread over the viewing directions.", ExtractConfig, "frames.num_frames"
            )
        ),
    ] = None,
    min_frames: Annotated[
        int | None,
        typer.Option(
            help=with_default("Instances with fewer usable frames are ledgered.", ExtractConfig, "frames.min_frames")
        ),
    ] = None,
    resolution: Annotated[
        int | None,
        typer.Option(
            help=with_default(
                "Output side in pixels, at most: smaller crops keep their size (see --upsample).",
                ExtractConfig,
                "frames.resolution",
            )
        ),
    ] = None,
    upsample: Annotated[
        bool | None,
        typer.Option(
            "--upsample/--no-upsample",
            help=with_default("Enlarge crops smaller than --resolution to it too.", ExtractConfig, "frames.upsample"),
        ),
    ] = None,
    crop: Annotated[
        bool | None,
        typer.Option(
            "--crop/--no-crop", help=with_default("A square crop around the object.", ExtractConfig, "frames.crop")
        ),
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
    """Turn captured objects into views with recorded cameras: `ROOT/views/<source>/<instance>/`.

    MVImgNet: COLMAP-registered video frames, chosen to cover the viewing directions (blurred
    frames skipped), cropped around the object's sparse points and resized, cameras in OpenCV
    axes with azimuth/elevation about an up direction estimated from the capture. IM3D and other
    NeRF-synthetic folders: the given cameras and RGBA renders. Each instance is committed whole;
    broken ones go to ROOT/failures/extract with the reason.

    Example: mvcap extract data/mv --source mvimgnet --folder /data/mvimgnet --num-frames 24
    """
    with user_errors():
        overrides = {
            "source.kind": source,
            "source.folder": str(folder) if folder else None,
            "source.zips": [str(z) for z in zips] if zips else None,
            "frames.num_frames": num_frames,
            "frames.min_frames": min_frames,
            "frames.resolution": resolution,
            "frames.upsample": upsample,
            "frames.crop": crop,
        }
        settings = stage_config("extract", config, overrides)
        run_stage_command(
            "extract",
            root,
            settings,
            shard=shard,
            num_shards=num_shards,
            options=run_options(redo, retry_failed, quiet, limit=limit, keys=keys, keys_file=keys_file),
        )
