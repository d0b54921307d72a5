"""The portable captioning backend: a LLaVA-family model run with transformers.

Slower than vLLM, but it runs wherever torch does (CPU included) and shares an environment with
Blender. torch and transformers are imported when a backend is constructed, never when this module
is imported, so `mvcap --help` stays light.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mvcap_build.caption.backends.base import CaptionRequest
from mvcap_build.imaging import load_rgb

#: Short names accepted for `model`; anything else is a Hub id or a local directory.
MODEL_ALIASES: dict[str, str] = {
    "llava": "llava-hf/llava-1.5-7b-hf",
    "llava-1.5": "llava-hf/llava-1.5-7b-hf",
    "llava-1.5-13b": "llava-hf/llava-1.5-13b-hf",
    "llava-next": "llava-hf/llava-v1.6-mistral-7b-hf",
}

_INSTALL_HINT = "pip install 'mvcap-build[caption]'"
# The prompt format of LLaVA-1.5, for processors saved without a chat template.
_LLAVA_15_FORMAT = "USER: <image>\n{prompt} ASSISTANT:"
_DTYPES = ("auto", "float32", "float16", "bfloat16")


class HFBackendError(RuntimeError):
    """The environment or the model cannot run this backend; the message says what to do."""


def resolve_model(model: str) -> str:
    """Turn an alias into its Hub id; return Hub ids and paths unchanged."""
    return MODEL_ALIASES.get(model, model)


class HFBackend:
    """Caption views with a transformers image-text-to-text model, greedily, in batches."""

    name = "hf"

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 77,
        batch_size: int = 8,
        trust_remote_code: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        try:
            import torch
            import transformers
        except ImportError as error:
            raise HFBackendError(
                f"the 'hf' caption backend needs torch and transformers ({error}); "
                f"install them with: {_INSTALL_HINT}"
            ) from error

        self.model_id = resolve_model(model)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self._torch = torch
        self.device = _pick_device(torch, device)
        self.dtype = _pick_dtype(torch, dtype, self.device)
        self._processor, self._model = _load(transformers, self.model_id, self.dtype, trust_remote_code)
        self._model.to(self.device).eval()

        tokenizer = self._processor.tokenizer
        # Decoder-only generation continues the last token of each row: pad on the left.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._pad_token_id = tokenizer.pad_token_id
        self._has_chat_template = bool(getattr(self._processor, "chat_template", None))

    def caption(self, requests: list[CaptionRequest]) -> list[str]:
        captions: list[str] = []
        for start in range(0, len(requests), self.batch_size):
            captions.extend(self._caption_batch(requests[start : start + self.batch_size]))
        return captions

    def format_prompt(self, prompt: str) -> str:
        """The full text the model sees for one request, with the image placeholder in it."""
        if self._has_chat_template:
            conversation = [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
            ]
            return self._processor.apply_chat_template(conversation, add_generation_prompt=True)
        return _LLAVA_15_FORMAT.format(prompt=prompt)

    def _caption_batch(self, batch: list[CaptionRequest]) -> list[str]:
        if not batch:
            return []
        torch = self._torch
        images = [load_rgb(request.image_path) for request in batch]
        texts = [self.format_prompt(request.prompt) for request in batch]
        inputs = self._processor(images=images, text=texts, padding=True, return_tensors="pt")
        inputs = inputs.to(self.device, dtype=self.dtype)  # casts only the floating tensors
        with torch.inference_mode():
            output = self._model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=self._pad_token_id,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        decoded = self._processor.batch_decode(new_tokens, skip_special_tokens=True)
        return [text.strip() for text in decoded]


def _pick_device(torch: Any, device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _pick_dtype(torch: Any, dtype: str, device: str) -> Any:
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # Half precision on CPU is slow where it works at all.
    return torch.float32


def _load(transformers: Any, model_id: str, dtype: Any, trust_remote_code: bool) -> tuple[Any, Any]:
    """Load the processor and model, turning "not found" into a message that says what to do."""
    if _looks_like_path(model_id) and not Path(model_id).expanduser().is_dir():
        raise HFBackendError(
            f"caption model directory {model_id!r} does not exist. Pass a directory written by "
            f"save_pretrained, a Hub id (owner/name) or one of: {', '.join(MODEL_ALIASES)}."
        )
    model_class = getattr(transformers, "AutoModelForImageTextToText", None)
    if model_class is None:  # transformers < 4.46
        model_class = transformers.LlavaForConditionalGeneration
    try:
        processor = transformers.AutoProcessor.from_pretrained(
            model_id, trust_remote_code=trust_remote_code
        )
        model = model_class.from_pretrained(
            model_id, dtype=dtype, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as error:
        raise HFBackendError(_load_failure_message(model_id, error)) from error
    return processor, model


def _looks_like_path(model_id: str) -> bool:
    # A Hub id is "name" or "owner/name"; anything else can only be a directory.
    return (
        Path(model_id).expanduser().exists()
        or model_id.startswith((".", "/", "~"))
        or model_id.count("/") > 1
        or (os.sep != "/" and os.sep in model_id)
    )


def _load_failure_message(model_id: str, error: Exception) -> str:
    lines = [f"cannot load caption model {model_id!r}: {error}"]
    if _looks_like_path(model_id):
        lines.append(
            "It was read as a local directory: it must hold config.json, the weights and the "
            "processor files, as written by save_pretrained."
        )
        return "\n".join(lines)
    lines.append(
        "Pass a local directory that holds the model, or a Hub id that is reachable or already in "
        "the Hugging Face cache (HF_HOME)."
    )
    if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE"):
        lines.append(
            "HF_HUB_OFFLINE is set, so only the cache is read: download the model beforehand "
            "(`hf download <id>`) or unset HF_HUB_OFFLINE."
        )
    else:
        lines.append("Without network, download the model beforehand and set HF_HUB_OFFLINE=1.")
    return "\n".join(lines)
