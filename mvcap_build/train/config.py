"""Every knob of `mvcap train-ovt`, with its default and the reason for it, in one place (the
model's knobs, which a checkpoint carries to eval, in `mvcap_build/ovt/config.py`).

This module imports only pydantic, so the CLI can validate a YAML config before torch loads.
The resolved config is written beside the outputs and inside every checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, model_validator

from mvcap_build.ovt.config import OVTModelConfig

TINY_RANDOM = "tiny-random"  # clip_model value: build a tiny random CLIP (offline demos, tests)

# `preset: paper`: Omniview-Tuning as its code trains (Heathcliff-saku/Omniview_Tuning,
# scripts/config.py, train_viformer_multigpu.py, model/), for every field the file does not set.
# LoRA: peft's defaults (r = alpha = 8). VIFormer: PyTorch's post-norm encoder layer; its
# dropout 0.1 never acts there, as the mining pass's `model.eval()` is never undone, hence 0.
# Schedule: CosineAnnealingLR stepped per epoch (T_max = epochs, eta_min 1e-7 = 5e-5 x 0.002).
# Not covered: 30 epochs (set max_steps for your data) and the batch of 512 MVCap + 256 ImageNet
# pairs (objects_per_batch x views_per_object, and aux_data with aux_ratio 0.5); what else
# differs on purpose is listed in README (train-ovt).
PAPER_PRESET = {
    "viformer_layers": 2,
    "viformer_heads": 4,
    "viformer_ff_dim": 2048,
    "viformer_dropout": 0.0,
    "viformer_norm": "post",
    "viformer_weight": 0.1,
    "logit_scale": "fresh",
    "lora_r": 8,
    "lora_alpha": 8,
    "anchor": "knn",
    "knn_neighbors": 5,
    "hard_views": 5,
    "margin": 0.3,
    "consistency_weight": 1.0,
    "mining": "full_pass",
    "views_per_object": 8,
    "augment": True,
    "aux_ratio": 0.5,
    "lr": 5e-5,
    "weight_decay": 0.05,
    "betas": (0.9, 0.98),
    "adam_eps": 1e-6,
    "schedule": "cosine_epoch",
    "warmup_steps": 0,
    "min_lr_ratio": 0.002,
    "grad_clip": 1.0,
}


class TrainOVTConfig(OVTModelConfig):
    """Omniview-Tuning hyper-parameters (nanoGPT style: read the defaults top to bottom). The
    model's own come first, from `mvcap_build/ovt/config.py`: a checkpoint rebuilds its model
    from those alone."""

    model_config = ConfigDict(extra="forbid")

    # --- data --------------------------------------------------------------------------------
    objects_per_batch: int = 16  # P: distinct objects per batch (the contrastive negatives)
    views_per_object: int = 4  # V: views of each object (drawn with replacement if it has fewer)
    num_workers: int = 2  # DataLoader processes decoding PNGs; 0 decodes in the main process
    # Paper: RandomRotation(90) + RandomAffine(translate 0.1) on the multi-view images, on white.
    augment: bool = False
    # A second image-text source mixed into every batch, to keep 2D performance (the paper mixes
    # ImageNet): an export folder (Parquet) or an ImageFolder (class folders) with aux_classnames.
    aux_data: Path | None = None
    aux_classnames: Path | None = None  # class-name file for an ImageFolder (see mvcap eval --help)
    aux_ratio: float = 0.5  # aux pairs per multi-view pair in a batch (paper: 256 / 512)

    # --- loss --------------------------------------------------------------------------------
    hard_views: int = 2  # K: views per object pulled toward its anchor (the farthest ones)
    consistency_weight: float = 1.0  # weight of the cross-viewpoint consistency term
    margin: float = 0.0  # consistency is relu(1 - cos + margin) (paper: 0.3; see loss.py)
    anchor: Literal["mean", "knn"] = "mean"  # knn: OVT's kNN-weighted centre (see mining.py)
    knn_neighbors: int = 5
    # Where anchors and hard views are chosen from (see mining.py): full_pass = the paper's
    # no-grad pass over all views at each epoch start (an epoch: as many views as the export
    # has); bank = one pass at the start, then every view as last seen, refreshed as batches
    # pass (no further pass; views embedded at different steps); batch = this batch only.
    mining: Literal["full_pass", "bank", "batch"] = "full_pass"
    # Under several processes, compute the contrastive loss over the global batch (every
    # process's pairs are negatives for every other's), as CLIP does.
    gather_negatives: bool = True

    # --- optimisation ------------------------------------------------------------------------
    lr: float = 1e-4  # peak learning rate (AdamW, trainable params only: LoRA + VIFormer)
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW's; paper: (0.9, 0.98)
    adam_eps: float = 1e-8  # AdamW's; paper: 1e-6
    max_steps: int = 1000  # total optimiser steps; raise it and rerun to train further
    warmup_steps: int = 50  # linear warmup from ~0 to lr
    # Decay after warmup, per step; cosine_epoch: the paper's cosine stepped once per epoch (an
    # epoch: as many views as the export has), ending one epoch short of the floor as it does.
    schedule: Literal["cosine", "linear", "constant", "cosine_epoch"] = "cosine"
    min_lr_ratio: float = 0.0  # the decay ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"  # passed to accelerate

    # --- bookkeeping -------------------------------------------------------------------------
    save_every: int = 200  # checkpoint every N steps (and always at the last step)
    log_every: int = 10  # log loss terms every N steps
    seed: int = 0  # model init (VIFormer) and the batch sampler both derive from it

    preset: Literal["none", "paper"] = "none"  # paper: PAPER_PRESET for every field not set

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data):
        if isinstance(data, dict) and data.get("preset") == "paper":
            return {**PAPER_PRESET, **data}
        return data

    @model_validator(mode="after")
    def _check(self) -> TrainOVTConfig:
        if self.objects_per_batch < 2:
            raise ValueError("objects_per_batch must be >= 2: other objects are the negatives")
        if not 1 <= self.hard_views <= self.views_per_object:
            raise ValueError(
                f"hard_views ({self.hard_views}) must be between 1 and views_per_object ({self.views_per_object})"
            )
        if self.aux_data is None and self.aux_classnames is not None:
            raise ValueError("aux_classnames goes with aux_data (an ImageFolder)")
        if not 0 < self.aux_ratio <= 4:
            raise ValueError("aux_ratio is aux pairs per multi-view pair: between 0 and 4")
        for name in ("max_steps", "save_every", "log_every", "lora_r", "knn_neighbors"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        return self


class TrainStageConfig(TrainOVTConfig):
    """The `train_ovt:` section of a pipeline file: the trainer's settings plus where it reads
    and writes. The paths are not part of the checkpoint's config."""

    export_dir: Path | None = None  # default: ROOT/export
    output: Path | None = None  # default: ROOT/train/ovt
    # Which shards of the export: auto = the training-ready ones (`export --image-size`) when
    # there are any, else the originals; original / training = those only.
    images: Literal["auto", "original", "training"] = "auto"

    def trainer_config(self) -> TrainOVTConfig:
        return TrainOVTConfig(**self.model_dump(exclude={"export_dir", "output", "images"}))
