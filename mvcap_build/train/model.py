"""OVT's model: a frozen CLIP, LoRA on the vision tower's q/k/v, and a VIFormer on top.

Only LoRA and VIFormer train; the text tower and every base weight stay as pretrained, so the
fine-tuned image space stays aligned with CLIP's text space (zero-shot keeps working).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mvcap_build.train.config import TrainOVTConfig

LORA_TARGETS = r".*vision_model.*\.(q_proj|k_proj|v_proj)"


class VIFormer(nn.Module):
    """A small transformer encoder on the pooled image embedding (one token per image).

    It works per image, so an embedding never depends on which other images share its batch.
    """

    def __init__(self, dim: int, layers: int = 2, heads: int = 8):
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.encoder(embedding[:, None, :])[:, 0, :]


class OVTModel(nn.Module):
    """CLIP + LoRA + VIFormer; `forward` returns normalised embeddings and CLIP's logit scale."""

    def __init__(self, clip, config: TrainOVTConfig):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                          lora_dropout=config.lora_dropout, target_modules=LORA_TARGETS)
        self.clip = get_peft_model(clip, lora)  # freezes every base weight
        dim = clip.config.projection_dim
        self.viformer = VIFormer(dim, config.viformer_layers, config.viformer_heads)
        self.viformer_weight = config.viformer_weight
        self.tokenizer = None  # attached by load_ovt_checkpoint, for embed_texts
        self.transform = None  # attached by load_ovt_checkpoint, for embed_images

    @property
    def base(self):
        """The CLIPModel itself (with LoRA layers injected)."""
        return self.clip.get_base_model()

    def encode_image(self, pixel_values: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        pooled = self.base.vision_model(pixel_values=pixel_values).pooler_output
        embedding = self.base.visual_projection(pooled)
        embedding = embedding + self.viformer_weight * self.viformer(embedding)
        return F.normalize(embedding, dim=-1) if normalize else embedding

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                    normalize: bool = True) -> torch.Tensor:
        pooled = self.base.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        embedding = self.base.text_projection(pooled)
        return F.normalize(embedding, dim=-1) if normalize else embedding

    def forward(self, pixel_values, input_ids, attention_mask=None) -> dict[str, torch.Tensor]:
        with torch.no_grad():  # the text tower is frozen: no activations kept for backward
            text = self.encode_text(input_ids, attention_mask)
        return {
            "image_embeds": self.encode_image(pixel_values),
            "text_embeds": text,
            "logit_scale": self.base.logit_scale.exp(),
        }

    @torch.no_grad()
    def embed_images(self, images: list) -> torch.Tensor:
        """PIL images (RGBA renders are put on white) -> normalised embeddings."""
        device = self.base.logit_scale.device
        return self.encode_image(torch.stack([self.transform(im) for im in images]).to(device))

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        device = self.base.logit_scale.device
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=77,
                                return_tensors="pt").to(device)
        return self.encode_text(tokens["input_ids"], tokens["attention_mask"])


def build_ovt_model(config: TrainOVTConfig, base_model: str) -> OVTModel:
    """Load CLIP from `base_model` (Hub id or dir) and wrap it; seeded so VIFormer init repeats."""
    from transformers import CLIPModel

    clip = CLIPModel.from_pretrained(base_model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return OVTModel(clip, config)
