"""`mvcap export`: metadata.json + Parquet shards + dataset card, and the push to the Hub."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from mvcap_build.cli.common import ConfigFile, Quiet, run_options, run_stage_command, stage_config, user_errors
from mvcap_build.cli.defaults import with_default
from mvcap_build.export.config import ExportConfig, HubConfig


class ImageFormat(str, Enum):
    jpeg = "jpeg"
    webp = "webp"
    png = "png"


def export(
    root: Annotated[Path, typer.Argument(help="Dataset root with views and captions.")],
    config: ConfigFile = None,
    name: Annotated[
        str | None, typer.Option(help=with_default("Dataset name on the card.", ExportConfig, "name"))
    ] = None,
    splits: Annotated[
        str | None,
        typer.Option(
            metavar="NAME=FRACTION,...",
            help="Object-level splits, e.g. train=0.9,val=0.05,test=0.05: fractions adding up to 1; "
            "each object goes to one split by a hash of its key (default: the config's splits, else train=1).",
        ),
    ] = None,
    rows_per_parquet: Annotated[
        int | None, typer.Option(help="Views per Parquet shard (shards also roll at ~500 MB).")
    ] = None,
    allow_mixed_captions: Annotated[
        bool,
        typer.Option("--allow-mixed-captions", help="Export captions of several backends/models/prompts together."),
    ] = False,
    mvcap_layout: Annotated[
        bool,
        typer.Option(
            "--mvcap-layout",
            help="Also write MVCap's released layout (export/mvcap/: images + metadata.json) "
            "for the original OVT code.",
        ),
    ] = False,
    image_size: Annotated[
        int | None,
        typer.Option(
            help="Also write training-ready shards: "
            "images resized so their shorter side is this many pixels (e.g. 224)."
        ),
    ] = None,
    image_format: Annotated[
        ImageFormat | None,
        typer.Option(
            help=with_default(
                "Encoding of the training-ready images (jpeg puts RGBA renders on white, as the trainer does).",
                ExportConfig,
                "training_images.format",
            )
        ),
    ] = None,
    image_quality: Annotated[
        int | None,
        typer.Option(
            help=with_default(
                "JPEG/WebP quality of the training-ready images, 1-100.", ExportConfig, "training_images.quality"
            )
        ),
    ] = None,
    no_originals: Annotated[
        bool, typer.Option("--no-originals", help="Write only the training-ready shards, not the original images.")
    ] = False,
    hf_push: Annotated[
        str | None,
        typer.Option(
            "--hf-push",
            metavar="OWNER/NAME",
            help="Then push the export to this Hub dataset repo (created if missing). "
            "Token: $HF_TOKEN or `hf auth login`. Rerun to resume.",
        ),
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the Hub repo private.")] = False,
    revision: Annotated[
        str | None,
        typer.Option(help=with_default("Hub branch to push to (created if missing).", HubConfig, "revision")),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Write `ROOT/export`: `data/<split>-*.parquet` (images and every column), `metadata/metadata_NNNNN.json`
    (MVCap schema: path, caption, obj_id, img_id, plus category, source and view fields) and a dataset
    card the Hub shows; then, with `--hf-push`, upload it.

    Load it with `datasets.load_dataset("parquet", data_files="ROOT/export/data/train-*.parquet")`.
    Splits are drawn per object (`--splits`, or `splits:` in the config); shards roll at ~500 MB.
    obj_id counts from 0 over objects sorted by key; img_id = obj_id * 100 + view index.
    Exporting an unchanged root again gives byte-identical files, so pushing it again uploads nothing,
    and a push that failed halfway uploads only what is missing when rerun.
    """
    from mvcap_build.config_io import load_yaml, merge_overrides, section, validate
    from mvcap_build.dataset import DatasetRoot
    from mvcap_build.errors import ConfigError

    with user_errors():
        DatasetRoot(root).ensure_exists()
        training = {
            "training_images.size": image_size,
            "training_images.format": image_format.value if image_format else None,
            "training_images.quality": image_quality,
            "training_images.originals": "instead" if no_originals else None,
        }
        if image_size is None and any(v is not None for v in training.values()):
            raise ConfigError("--image-format, --image-quality and --no-originals need --image-size")
        overrides = {
            "name": name,
            "splits": parse_splits(splits) if splits is not None else None,
            "rows_per_parquet": rows_per_parquet,
            "allow_mixed_captions": allow_mixed_captions or None,
            "mvcap_layout": mvcap_layout or None,
            **training,
        }
        file = load_yaml(config) if config is not None else {}
        settings = stage_config("export", config, overrides, data=section(file, "export"))
        hub_data = section(file, "hub") if "root" in file else {}  # only a pipeline file has a hub: section
        hub = validate(
            HubConfig,
            merge_overrides(hub_data, {"repo_id": hf_push, "private": private or None, "revision": revision}),
            "hub config",
        )
        if (private or revision) and not hub.repo_id:
            raise ConfigError(
                "--private and --revision go with --hf-push OWNER/NAME (or hub.repo_id in the pipeline file)"
            )
        options = run_options(quiet=quiet)
        run_stage_command("export", root, settings, options=options)
        if hub.repo_id:
            run_stage_command("hub", root, hub, options=options)


def parse_splits(text: str) -> dict[str, float]:
    """`train=0.9,test=0.1` -> {"train": 0.9, "test": 0.1}; each mistake is one ConfigError line."""
    from mvcap_build.errors import ConfigError

    example = "e.g. --splits train=0.9,val=0.05,test=0.05"
    splits: dict[str, float] = {}
    for part in text.split(","):
        name, equals, value = (piece.strip() for piece in part.partition("="))
        if not equals or not name:
            raise ConfigError(f"--splits {text!r}: {part.strip()!r} is not NAME=FRACTION ({example})")
        if not name.replace("_", "").isalnum():
            raise ConfigError(f"--splits: a split name is letters, digits and underscores, not {name!r} ({example})")
        if name in splits:
            raise ConfigError(f"--splits {text!r}: {name!r} is given twice")
        try:
            fraction = float(value)
        except ValueError:
            raise ConfigError(f"--splits: the fraction of {name!r} is {value!r}, not a number ({example})") from None
        if not 0 <= fraction <= 1:  # NaN fails this too
            raise ConfigError(f"--splits: the fraction of {name!r} is {value}, not between 0 and 1")
        splits[name] = fraction
    total = sum(splits.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"--splits {text!r}: the fractions add up to {total:g}, not 1 ({example})")
    return splits
