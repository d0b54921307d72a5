"""`mvcap train-ovt`: fine-tune CLIP for viewpoint invariance on an exported dataset.

torch, transformers and peft are imported inside the command, so `mvcap --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mvcap_build.cli.common import ConfigFile, RedoChoice, run_options, run_stage_command, stage_config, user_errors
from mvcap_build.cli.defaults import with_default
from mvcap_build.cli.output import quiet_libraries, show_training_log
from mvcap_build.train.config import TrainStageConfig


def train_ovt(
    data: Annotated[
        Path,
        typer.Argument(
            help="A dataset root with an export, or the folder written by `mvcap export` (it holds data/*.parquet)."
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Run folder: checkpoints, log, config (default ROOT/train/ovt). Rerun to resume."
        ),
    ] = None,
    config: ConfigFile = None,
    clip_model: Annotated[
        str | None,
        typer.Option(
            help=with_default(
                'Hub id or local CLIP dir; "tiny-random" for a random tiny CLIP.', TrainStageConfig, "clip_model"
            )
        ),
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option(
            help=with_default(
                "Total optimiser steps (raise and rerun to train further).", TrainStageConfig, "max_steps"
            )
        ),
    ] = None,
    objects_per_batch: Annotated[
        int | None,
        typer.Option(
            "--objects", "-P", help=with_default("Objects per batch (P).", TrainStageConfig, "objects_per_batch")
        ),
    ] = None,
    views_per_object: Annotated[
        int | None,
        typer.Option("--views", "-V", help=with_default("Views per object (V).", TrainStageConfig, "views_per_object")),
    ] = None,
    hard_views: Annotated[
        int | None,
        typer.Option(
            help=with_default("Hardest views per object in the consistency loss (k).", TrainStageConfig, "hard_views")
        ),
    ] = None,
    lr: Annotated[float | None, typer.Option(help=with_default("Peak learning rate.", TrainStageConfig, "lr"))] = None,
    save_every: Annotated[
        int | None, typer.Option(help=with_default("Checkpoint every N steps.", TrainStageConfig, "save_every"))
    ] = None,
    num_workers: Annotated[
        int | None, typer.Option(help=with_default("DataLoader worker processes.", TrainStageConfig, "num_workers"))
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help=with_default("Seed for VIFormer init and batch sampling.", TrainStageConfig, "seed")),
    ] = None,
    images: Annotated[
        str | None,
        typer.Option(
            help=with_default(
                "auto: the export's training-ready shards (export --image-size) when it has them, "
                "else the originals; original; training.",
                TrainStageConfig,
                "images",
            )
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help=with_default(
                "paper: Omniview-Tuning's own settings (kNN anchor, margin 0.3, K=5, VIFormer 4 heads x 2048, "
                "fresh temperature, augmentation, AdamW betas 0.9/0.98, lr 5e-5) for everything not set.",
                TrainStageConfig,
                "preset",
            )
        ),
    ] = None,
    mining: Annotated[
        str | None,
        typer.Option(
            help=with_default(
                "Where hard views are mined from: full_pass (the paper's pass over every view per epoch), "
                "bank (one pass, then every view as last seen), or batch.",
                TrainStageConfig,
                "mining",
            )
        ),
    ] = None,
    aux_data: Annotated[
        Path | None,
        typer.Option(
            help="A second image-text source mixed into every batch (the paper: ImageNet): "
            "an ImageFolder (with --aux-classnames) or Parquet with image and caption."
        ),
    ] = None,
    aux_classnames: Annotated[
        Path | None,
        typer.Option(help="Class-name file of the --aux-data ImageFolder (txt, json or csv; see `mvcap eval --help`)."),
    ] = None,
    redo: Annotated[
        RedoChoice,
        typer.Option(
            help="stale: when OUTPUT holds a run made with other settings, another export or another base model, "
            "move it to OUTPUT/previous/ and start over (by default the run stops and names what differs)."
        ),
    ] = RedoChoice.none,
) -> None:
    """Omniview-Tuning: CLIP + LoRA (vision q/k/v) + VIFormer, trained with an image-text
    contrastive loss that ignores same-object pairs plus a consistency loss that pulls each
    object's hardest views toward its anchor (mean or kNN-weighted centre of its views).
    `--preset paper` trains as the paper's code does.

    Flags override the YAML (a pipeline file's `train_ovt:` section or a file of its fields),
    which overrides the defaults (see mvcap_build/train/config.py). Checkpoints go to
    OUTPUT/checkpoints/step-N; running the same command again resumes from the latest one. A
    resume may change --max-steps, --save-every, log_every and --num-workers; any other setting,
    another export, base model revision or process count stops it before any work, naming what
    differs: use a new --output, or --redo stale.
    Several GPUs: `accelerate launch $(which mvcap) train-ovt ...`.
    """
    with user_errors():
        export_dir = data / "export" if (data / "export").is_dir() else data
        overrides = dict(
            export_dir=str(export_dir),
            output=str(output) if output else None,
            clip_model=clip_model,
            max_steps=max_steps,
            objects_per_batch=objects_per_batch,
            views_per_object=views_per_object,
            hard_views=hard_views,
            lr=lr,
            save_every=save_every,
            num_workers=num_workers,
            seed=seed,
            images=images,
            preset=preset,
            mining=mining,
            aux_data=str(aux_data) if aux_data else None,
            aux_classnames=str(aux_classnames) if aux_classnames else None,
        )
        settings = stage_config("train_ovt", config, overrides)
        quiet_libraries()
        show_training_log()
        run_stage_command("train_ovt", _dataset_root(export_dir), settings, options=run_options(redo))


def _dataset_root(export_dir: Path) -> Path:
    """Where the run is recorded (runs/): the dataset root the export came from (ROOT/export,
    ROOT/export/mvcap), else the folder beside the export; never inside the export itself."""
    for folder in export_dir.resolve().parents:
        if (folder / "objects").is_dir():
            return folder
    return export_dir.parent
