"""`mvcap export`: metadata.json + Parquet shards + dataset card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mvcap_build.cli.common import stage_config, user_errors


def export(
    root: Annotated[Path, typer.Argument(help="Dataset root with views and captions.")],
    config: Annotated[Optional[Path], typer.Option(help="YAML with export settings (or a pipeline YAML: its `export:` section).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Dataset name on the card.")] = None,
    rows_per_parquet: Annotated[Optional[int], typer.Option(help="Views per Parquet shard.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Write `ROOT/export`: `metadata/metadata_NNNNN.json` (MVCap schema: path, caption, obj_id,
    img_id, plus category, source and view fields), `data/train-*.parquet` and a dataset card.

    Load it with `datasets.load_dataset("parquet", data_files="ROOT/export/data/*.parquet")`.
    obj_id counts from 0 over objects sorted by key; img_id = obj_id * 100 + view index.
    """
    from mvcap_build.config_io import validate
    from mvcap_build.dataset import DatasetRoot
    from mvcap_build.export.config import ExportConfig
    from mvcap_build.export.stage import run_export

    with user_errors():
        overrides = {"name": name, "rows_per_parquet": rows_per_parquet}
        cfg = validate(ExportConfig, stage_config(config, "export", overrides), "export config")
        s = run_export(DatasetRoot(root), cfg, show_progress=not quiet)
        typer.echo(f"export: {s.objects} objects, {s.views} views in {s.parquet_files} Parquet shard(s) -> {s.folder}")
        if s.incomplete:
            typer.echo(f"export: left out {len(s.incomplete)} rendered objects without complete captions (run caption)")
