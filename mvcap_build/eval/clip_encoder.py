"""A plain transformers CLIPModel behind OVTModel's interface (`embed_images`, `embed_texts`,
`encode_image`, `.transform`, `.tokenizer`), so the evaluation treats both alike."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CLIPEncoder(nn.Module):
    """The same pooled output -> projection path as OVTModel, so an OVT model whose LoRA and
    VIFormer contribute nothing embeds exactly like its base."""

    def __init__(self, clip, tokenizer, transform):
        super().__init__()
        self.clip, self.tokenizer, self.transform = clip, tokenizer, transform

    def encode_image(self, pixel_values: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        pooled = self.clip.vision_model(pixel_values=pixel_values).pooler_output
        embedding = self.clip.visual_projection(pooled)
        return F.normalize(embedding, dim=-1) if normalize else embedding

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                    normalize: bool = True) -> torch.Tensor:
        pooled = self.clip.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        embedding = self.clip.text_projection(pooled)
        return F.normalize(embedding, dim=-1) if normalize else embedding

    @torch.no_grad()
    def embed_images(self, images: list) -> torch.Tensor:
        """PIL images (RGBA renders are put on white) -> normalised embeddings."""
        device = self.clip.logit_scale.device
        return self.encode_image(torch.stack([self.transform(im) for im in images]).to(device))

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        device = self.clip.logit_scale.device
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=77,
                                return_tensors="pt").to(device)
        return self.encode_text(tokens["input_ids"], tokens["attention_mask"])
