"""`mvcap train-ovt`: fine-tune CLIP for viewpoint invariance on an exported dataset.

torch, transformers and peft are imported inside the command, so `mvcap --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mvcap_build.cli.common import show_training_log, user_errors


def train_ovt(
    export_dir: Annotated[Path, typer.Argument(help="Folder written by `mvcap export` (holds data/*.parquet).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder: checkpoints, log, config. Rerun to resume.")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML file of TrainOVTConfig fields.", exists=True, dir_okay=False)] = None,
    clip_model: Annotated[str | None, typer.Option(help='Hub id or local CLIP dir; "tiny-random" for a random tiny CLIP.')] = None,
    max_steps: Annotated[int | None, typer.Option(help="Total optimiser steps (raise and rerun to train further).")] = None,
    objects_per_batch: Annotated[int | None, typer.Option("--objects", "-P", help="Objects per batch (P).")] = None,
    views_per_object: Annotated[int | None, typer.Option("--views", "-V", help="Views per object (V).")] = None,
    hard_views: Annotated[int | None, typer.Option(help="Hardest views per object in the consistency loss (k).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    save_every: Annotated[int | None, typer.Option(help="Checkpoint every N steps.")] = None,
    num_workers: Annotated[int | None, typer.Option(help="DataLoader worker processes.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for VIFormer init and batch sampling.")] = None,
) -> None:
    """Omniview-Tuning: CLIP + LoRA (vision q/k/v) + VIFormer, trained with an image-text
    contrastive loss that ignores same-object pairs plus a consistency loss that pulls each
    object's hardest views toward its mean embedding.

    Options override the YAML config, which overrides the defaults (see
    mvcap_build/train/config.py). Checkpoints go to OUTPUT/checkpoints/step-N; running the same
    command again resumes from the latest one. Several GPUs:
    `accelerate launch $(which mvcap) train-ovt ...`.
    """
    from pydantic import ValidationError

    from mvcap_build.train.config import TrainOVTConfig

    overrides = dict(clip_model=clip_model, max_steps=max_steps,
                     objects_per_batch=objects_per_batch, views_per_object=views_per_object,
                     hard_views=hard_views, lr=lr, save_every=save_every,
                     num_workers=num_workers, seed=seed)
    try:
        if config is not None:
            cfg = TrainOVTConfig.from_yaml(config, **overrides)
        else:
            cfg = TrainOVTConfig(**{k: v for k, v in overrides.items() if v is not None})
    except (ValidationError, ValueError) as err:
        raise typer.BadParameter(str(err), param_hint="--config / options") from err

    show_training_log()
    from mvcap_build.train.trainer import train_ovt as run

    with user_errors():
        checkpoint = run(cfg, export_dir, output)
    typer.echo(f"checkpoint: {checkpoint}")
