"""OVT's model: a frozen CLIP, LoRA on the vision tower's q/k/v, and a VIFormer on top.

Only LoRA and VIFormer train; the text tower and every base weight stay as pretrained, so the
fine-tuned image space stays aligned with CLIP's text space (zero-shot keeps working). Its
settings are `OVTModelConfig` (config.py); train-ovt trains it, eval loads it (checkpoint.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mvcap_build.clip.encoding import Embedder, image_embedding, text_embedding
from mvcap_build.errors import CheckpointError
from mvcap_build.ovt.config import OVTModelConfig

LORA_TARGETS = r".*vision_model.*\.(q_proj|k_proj|v_proj)"


class VIFormer(nn.Module):
    """A small transformer encoder on the pooled image embedding (one token per image).

    It works per image, so an embedding never depends on which other images share its batch.
    `norm`: pre normalises before attention and feed-forward; post after each residual sum
    (PyTorch's default order, the paper's), so its output is a LayerNorm's.
    """

    def __init__(
        self,
        dim: int,
        layers: int = 2,
        heads: int = 8,
        ff_dim: int | None = None,
        dropout: float = 0.0,
        norm: str = "pre",
    ):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=ff_dim or 4 * dim, dropout=dropout, batch_first=True, norm_first=norm == "pre"
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.encoder(embedding[:, None, :])[:, 0, :]


class OVTModel(Embedder, nn.Module):
    """CLIP + LoRA + VIFormer; `forward` returns normalised embeddings and CLIP's logit scale."""

    def __init__(self, clip, config: OVTModelConfig):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout, target_modules=LORA_TARGETS
        )
        self.clip = get_peft_model(clip, lora)  # freezes every base weight
        dim = clip.config.projection_dim
        self.viformer = VIFormer(
            dim,
            config.viformer_layers,
            config.viformer_heads,
            config.viformer_ff_dim,
            config.viformer_dropout,
            config.viformer_norm,
        )
        self.viformer_weight = config.viformer_weight
        # The paper trains a new temperature from 1/0.07 instead of CLIP's learned one (100).
        self.fresh_logit_scale = (
            nn.Parameter(torch.tensor(math.log(1 / 0.07))) if config.logit_scale == "fresh" else None
        )
        self.tokenizer = None  # attached by load_ovt_checkpoint, for embed_texts
        self.transform = None  # attached by load_ovt_checkpoint, for embed_images

    @property
    def base(self):
        """The CLIPModel itself (with LoRA layers injected)."""
        return self.clip.get_base_model()

    def encode_image(self, pixel_values: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        embedding = image_embedding(self.base, pixel_values)
        embedding = embedding + self.viformer_weight * self.viformer(embedding)
        return F.normalize(embedding, dim=-1) if normalize else embedding

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, normalize: bool = True
    ) -> torch.Tensor:
        embedding = text_embedding(self.base, input_ids, attention_mask)
        return F.normalize(embedding, dim=-1) if normalize else embedding

    def forward(self, pixel_values, input_ids, attention_mask=None) -> dict[str, torch.Tensor]:
        with torch.no_grad():  # the text tower is frozen: no activations kept for backward
            text = self.encode_text(input_ids, attention_mask)
        return {
            "image_embeds": self.encode_image(pixel_values),
            "text_embeds": text,
            "logit_scale": self.logit_scale(),
        }

    def logit_scale(self) -> torch.Tensor:
        if self.fresh_logit_scale is not None:
            return self.fresh_logit_scale.exp().clamp(max=100.0)  # CLIP's cap
        return self.base.logit_scale.exp()

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """What trains besides LoRA: VIFormer, and the fresh temperature when there is one."""
        state = {f"viformer.{k}": v for k, v in self.viformer.state_dict().items()}
        if self.fresh_logit_scale is not None:
            state["logit_scale"] = self.fresh_logit_scale.detach()
        return state

    def load_head_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if not any(k.startswith("viformer.") for k in state):  # checkpoints before the temperature
            state = {f"viformer.{k}": v for k, v in state.items()}
        self.viformer.load_state_dict(
            {k.removeprefix("viformer."): v for k, v in state.items() if k.startswith("viformer.")}
        )
        if (self.fresh_logit_scale is None) != ("logit_scale" not in state):
            raise CheckpointError("the checkpoint's logit_scale setting differs from the config's")
        if self.fresh_logit_scale is not None:
            with torch.no_grad():
                self.fresh_logit_scale.copy_(state["logit_scale"])


def build_ovt_model(config: OVTModelConfig, base_model: str, seed: int = 0) -> OVTModel:
    """Load CLIP from `base_model` (Hub id or dir, see clip/loading.py) and wrap it; LoRA and VIFormer
    are initialised from `seed` (the run's), so a run's init repeats."""
    from mvcap_build.clip.loading import clip_folder, load_clip_model

    clip = load_clip_model(clip_folder(base_model), base_model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return OVTModel(clip, config)
