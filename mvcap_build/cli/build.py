"""`mvcap build`: the whole pipeline from one YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mvcap_build.cli.common import show_training_log, user_errors


def build(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML, e.g. pipelines/demo.yaml.")],
    root: Annotated[Optional[Path], typer.Option(help="Override the dataset root named in the file.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Run render, caption, export and train-ovt as configured in PIPELINE, then print what the
    dataset root holds. Sections left out of the file are skipped. Safe to rerun: finished work
    is kept, so a killed build resumes.
    """
    from mvcap_build.cli.status import print_status
    from mvcap_build.config_io import load_yaml, validate
    from mvcap_build.pipeline.build import run_pipeline
    from mvcap_build.pipeline.config import PipelineConfig

    with user_errors():
        show_training_log()
        data = load_yaml(pipeline)
        if root is not None:
            data["root"] = str(root)
        config = validate(PipelineConfig, data, str(pipeline))
        dataset = run_pipeline(config, show_progress=not quiet, echo=typer.echo)
        typer.echo("")
        print_status(dataset)
        typer.secho(f"\nDataset ready at {dataset}", bold=True)
        if (dataset / "export").is_dir():
            files = dataset / "export" / "data" / "*.parquet"
            typer.echo(f"  load it: datasets.load_dataset('parquet', data_files='{files}', split='train')")
