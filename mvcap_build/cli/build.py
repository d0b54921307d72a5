"""`mvcap build`: the whole pipeline from one YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mvcap_build.cli.common import (
    Quiet,
    RedoChoice,
    RedoOption,
    RetryFailed,
    exit_if_all_failed,
    run_options,
    user_errors,
)
from mvcap_build.cli.output import quiet_libraries, show_training_log


def build(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML, e.g. pipelines/demo.yaml.")],
    root: Annotated[Path | None, typer.Option(help="Override the dataset root named in the file.")] = None,
    redo: RedoOption = RedoChoice.none,
    retry_failed: RetryFailed = False,
    quiet: Quiet = False,
) -> None:
    """Run render, caption, export and train-ovt as configured in PIPELINE, then print what the
    dataset root holds. Sections left out of the file are skipped. Safe to rerun: finished work
    is kept, so a killed build resumes; changed settings stop the stage they concern and name
    what differs (`--redo stale` redoes exactly those units).
    """
    from mvcap_build.cli.status import print_status
    from mvcap_build.pipeline.config import load_pipeline
    from mvcap_build.pipeline.runner import run_pipeline

    with user_errors():
        config = load_pipeline(pipeline, root)
        quiet_libraries()
        show_training_log()
        summaries = run_pipeline(config, options=run_options(redo, retry_failed, quiet), echo=typer.echo)
        exit_if_all_failed(summaries, config.root)
        typer.echo("")
        print_status(config.root)
        typer.secho(f"\nDataset ready at {config.root.resolve()}", bold=True)
        if (config.root / "export").is_dir():
            files = config.root.resolve() / "export" / "data" / "train-*.parquet"
            typer.echo(f"  load it: datasets.load_dataset('parquet', data_files='{files}', split='train')")
