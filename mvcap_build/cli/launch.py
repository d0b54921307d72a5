"""`mvcap launch` and `mvcap run-shard`: a pipeline's stages as shards on a runner."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mvcap_build.cli.common import Quiet, RedoChoice, RedoOption, RetryFailed, run_options, user_errors


def launch(
    pipeline: Annotated[
        Path, typer.Argument(help="Pipeline YAML with a `runner:` section (kind: local | slurm | ray).")
    ],
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print what would be submitted (sbatch scripts, Ray resources, commands); change nothing."
        ),
    ] = False,
    root: Annotated[Path | None, typer.Option(help="Override the dataset root named in the file.")] = None,
    redo: RedoOption = RedoChoice.none,
    retry_failed: RetryFailed = False,
) -> None:
    """Run the stages of PIPELINE in order, each as shards on the runner its `runner:` section
    names: local processes, a Slurm job array per stage (through submitit), or Ray tasks.

    Each shard writes a completion marker under ROOT/launch/markers when it ends cleanly. A stage
    starts only when every shard of the one before has its marker; if one failed or was killed,
    launch names it, with its log, and stops. Run the same command again: only the shards
    without a marker run (jobs still queued from an earlier launch are waited for, not doubled).
    Shard logs: ROOT/logs/STAGE/shard-I-of-N/launch.log. `mvcap status ROOT` shows the shards.

    Example: mvcap launch pipelines/demo.yaml --dry-run
    """
    from mvcap_build.launch.launcher import launch as launch_pipeline
    from mvcap_build.pipeline.config import load_pipeline

    with user_errors():
        config = load_pipeline(pipeline, root)
        reports = launch_pipeline(
            config, dry_run=dry_run, options=run_options(redo, retry_failed, quiet=False), echo=typer.echo
        )
    if dry_run:
        return
    if any(not r.finished or r.all_units_failed for r in reports):
        raise typer.Exit(1)
    typer.secho(f"\nEvery stage finished; dataset at {Path(config.root).resolve()}", bold=True)


def run_shard(
    pipeline: Annotated[
        Path, typer.Argument(help="Pipeline YAML (launch passes its resolved copy under ROOT/launch/pipelines).")
    ],
    stage: Annotated[str, typer.Option(help="Stage: render | extract | caption | export | train_ovt.")],
    shard: Annotated[int, typer.Option(help="This shard, 0-based.")] = 0,
    num_shards: Annotated[int, typer.Option(help="Shards the stage is split into (as the runner section says).")] = 1,
    redo: RedoOption = RedoChoice.none,
    retry_failed: RetryFailed = False,
    quiet: Quiet = False,
) -> None:
    """Run one shard of one stage of PIPELINE and write its completion marker: what each job of
    `mvcap launch` runs, and what a hand-written job array can run too.

    Exit 0: done, marker written. Exit 2: bad input or settings (a `failed` marker says why;
    launch reports it and does not resubmit it). Other exits: a bug or a crash.
    """
    from mvcap_build.cli.output import quiet_libraries, show_training_log
    from mvcap_build.launch.shard import run_shard as run_one

    with user_errors():
        quiet_libraries()
        if stage == "train_ovt":
            show_training_log()
        run_one(pipeline, stage, shard, num_shards, options=run_options(redo, retry_failed, quiet), echo=typer.echo)
