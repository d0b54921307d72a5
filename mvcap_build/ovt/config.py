"""The OVT model's settings: what a checkpoint needs to rebuild its model, for eval as for resume.

Pydantic only, so the CLI validates before torch loads. `TrainOVTConfig` (train/config.py) adds
the training knobs to these; a checkpoint stores the whole of it, and its model is rebuilt from
the fields below (an older checkpoint lacking one gets its default, as when it was written).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mvcap_build.config_io import PATH_IF_EXISTS


class OVTModelConfig(BaseModel):
    """CLIP + LoRA + VIFormer, as `mvcap_build.ovt.model.build_ovt_model` builds it."""

    model_config = ConfigDict(extra="forbid")

    # --- model -------------------------------------------------------------------------------
    # Hub id or local directory of a transformers CLIPModel; "tiny-random" builds a random
    # 32-wide CLIP into OUTPUT_DIR/base-model (for demos and tests; it learns nothing useful).
    clip_model: str = Field(
        "openai/clip-vit-base-patch32", json_schema_extra=PATH_IF_EXISTS
    )  # a Hub id or a local folder
    # Pixels per side fed to the vision tower; None = the model's own size (recorded once known).
    image_size: int | None = None
    viformer_layers: int = 2  # VIFormer: transformer encoder on the pooled image embedding
    viformer_heads: int = 8  # must divide CLIP's projection_dim (512 for ViT-B, 32 for tiny)
    viformer_ff_dim: int | None = None  # its feed-forward width; None = 4 x CLIP's projection_dim (paper: 2048)
    viformer_dropout: float = 0.0  # 0 keeps steps deterministic (the paper's 0.1 never acts: eval mode)
    # Where each VIFormer layer normalises: pre (before attention / feed-forward, the stabler
    # order) or post (after each residual sum: PyTorch's default, which the paper uses).
    viformer_norm: Literal["pre", "post"] = "pre"
    viformer_weight: float = 0.1  # embedding = clip + weight * VIFormer(clip): a gentle residual
    # clip: CLIP's own (pretrained) temperature; fresh: a new trainable one from 1/0.07, as the paper.
    logit_scale: Literal["clip", "fresh"] = "clip"
    lora_r: int = 8  # LoRA rank on the vision tower's q/k/v projections
    lora_alpha: int = 16  # LoRA scale is alpha / r
    lora_dropout: float = 0.0  # 0 keeps a step deterministic, which makes resume exact

    @classmethod
    def of(cls, config: dict) -> OVTModelConfig:
        """The model's settings out of a checkpoint's whole (training) config."""
        return cls(**{k: v for k, v in config.items() if k in cls.model_fields})
