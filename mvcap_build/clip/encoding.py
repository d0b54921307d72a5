"""CLIP's embedding path, written once for the trained OVT model and a plain CLIP alike.

`Embedder` gives a model `embed_images` and `embed_texts` (PIL images or strings -> normalised
embeddings) from its own `encode_image`, `encode_text`, `.transform`, `.tokenizer` and `.base`
(the CLIPModel). `CLIPEncoder` is a plain CLIPModel with that interface, so eval treats an OVT
checkpoint and its base CLIP alike; both project CLIP's pooled output with `image_embedding` and
`text_embedding`, so an OVT model whose LoRA and VIFormer contribute nothing embeds exactly like
its base.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MAX_TOKENS = 77  # CLIP's text context


def image_embedding(clip, pixel_values: torch.Tensor) -> torch.Tensor:
    """The CLIPModel's projected pooled image output, not normalised."""
    return clip.visual_projection(clip.vision_model(pixel_values=pixel_values).pooler_output)


def text_embedding(clip, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The CLIPModel's projected pooled text output, not normalised."""
    return clip.text_projection(clip.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output)


class Embedder:
    """`embed_images` / `embed_texts` for an nn.Module with `encode_image`, `encode_text`,
    `.transform`, `.tokenizer` and `.base` (its CLIPModel, whose device the inputs go to)."""

    @torch.no_grad()
    def embed_images(self, images: list) -> torch.Tensor:
        """PIL images (RGBA renders are put on white) -> normalised embeddings."""
        device = self.base.logit_scale.device
        return self.encode_image(torch.stack([self.transform(im) for im in images]).to(device))

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        device = self.base.logit_scale.device
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt").to(
            device
        )
        return self.encode_text(tokens["input_ids"], tokens["attention_mask"])


class CLIPEncoder(Embedder, nn.Module):
    """A plain transformers CLIPModel behind OVTModel's interface."""

    def __init__(self, clip, tokenizer, transform):
        super().__init__()
        self.clip, self.tokenizer, self.transform = clip, tokenizer, transform

    @property
    def base(self):
        """The CLIPModel itself, as `OVTModel.base`."""
        return self.clip

    def encode_image(self, pixel_values: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        embedding = image_embedding(self.clip, pixel_values)
        return F.normalize(embedding, dim=-1) if normalize else embedding

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, normalize: bool = True
    ) -> torch.Tensor:
        embedding = text_embedding(self.clip, input_ids, attention_mask)
        return F.normalize(embedding, dim=-1) if normalize else embedding
