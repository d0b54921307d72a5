"""Settings of the caption stage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CaptionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: str = "template"  # a key of mvcap_build.caption.backends.BACKENDS: hf, template
    model: str | None = None  # hf: a Hub id, an alias ("llava" = llava-hf/llava-1.5-7b-hf) or a local folder
    prompt: str = "category_guided"  # a template name in prompts/ or a path to a .txt file
    batch_size: int = Field(8, ge=1)  # images per generate() call
    max_new_tokens: int = Field(77, ge=1)  # CLIP reads at most 77 tokens anyway
    device: str = "auto"  # auto: cuda when available, else cpu
    dtype: str = "auto"  # auto: float16/bfloat16 on GPU, float32 on CPU
    retry_failed: bool = False  # redo objects that are in the caption failure ledger
