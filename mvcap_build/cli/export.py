"""`mvcap export`: metadata.json + Parquet shards + dataset card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mvcap_build.cli.common import ConfigFile, Quiet, run_options, run_stage_command, stage_config, user_errors


def export(
    root: Annotated[Path, typer.Argument(help="Dataset root with views and captions.")],
    config: ConfigFile = None,
    name: Annotated[Optional[str], typer.Option(help="Dataset name on the card.")] = None,
    rows_per_parquet: Annotated[Optional[int], typer.Option(help="Views per Parquet shard.")] = None,
    allow_mixed_captions: Annotated[bool, typer.Option("--allow-mixed-captions", help="Export captions of several backends/models/prompts together.")] = False,
    mvcap_layout: Annotated[bool, typer.Option("--mvcap-layout", help="Also write MVCap's released layout (export/mvcap/: images + metadata.json) for the original OVT code.")] = False,
    quiet: Quiet = False,
) -> None:
    """Write `ROOT/export`: `metadata/metadata_NNNNN.json` (MVCap schema: path, caption, obj_id,
    img_id, plus category, source and view fields), `data/train-*.parquet` and a dataset card.

    Load it with `datasets.load_dataset("parquet", data_files="ROOT/export/data/train-*.parquet")`.
    Splits are drawn per object (`splits:` in the config); shards roll at ~500 MB.
    obj_id counts from 0 over objects sorted by key; img_id = obj_id * 100 + view index.
    Exporting an unchanged root again gives byte-identical files.
    """
    from mvcap_build.dataset import DatasetRoot

    with user_errors():
        DatasetRoot(root).ensure_exists()
        overrides = {"name": name, "rows_per_parquet": rows_per_parquet, "allow_mixed_captions": allow_mixed_captions or None, "mvcap_layout": mvcap_layout or None}
        settings = stage_config("export", config, overrides)
        run_stage_command("export", root, settings, options=run_options(quiet=quiet))
