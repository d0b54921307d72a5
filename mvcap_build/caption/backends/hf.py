"""The portable captioning backend: a LLaVA-family model run with transformers.

Slower than vLLM, but it runs wherever torch does (CPU included) and shares an environment with
Blender. torch and transformers are imported when a backend is constructed, never when this module
is imported, so `mvcap --help` stays light. Which model `model:` names and where its files are
(local folder, Hugging Face cache, the Hub) is `mvcap_build.caption.models`, shared with vllm.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PIL import Image

from mvcap_build.caption.backends.base import CaptionRequest, CaptionResult, open_image
from mvcap_build.caption.config import HFBackendConfig
from mvcap_build.caption.models import (
    CaptionModelError,
    format_prompt,
    load_failure_message,
    model_source,
    pinned_revision,
    resolve_model,
)

_INSTALL_HINT = "pip install 'mvcap-build[caption]'"

#: What this backend raises when it cannot run: its model cannot be had, or torch is missing.
HFBackendError = CaptionModelError


class HFBackend:
    """Caption views with a transformers image-text-to-text model, greedily, in batches."""

    name = "hf"

    @classmethod
    def identity(cls, config: HFBackendConfig) -> dict[str, Any]:
        """What produces the text, for caption fingerprints: the model and the exact weights,
        and the settings that change the output (not batch size or device). No model loads."""
        return {
            "backend": cls.name,
            "model": resolve_model(config.model),
            "revision": pinned_revision(config.model, config.revision, config.hub_timeout_s),
            "dtype": config.dtype,
            "max_new_tokens": config.max_new_tokens,
            "decoding": "greedy",
        }

    def __init__(self, config: HFBackendConfig) -> None:
        try:
            import torch
            import transformers
        except ImportError as error:
            raise HFBackendError(
                f"the 'hf' caption backend needs torch and transformers ({error}); install them with: {_INSTALL_HINT}"
            ) from error

        self.config = config
        self.model_id = resolve_model(config.model)
        self.revision = config.revision
        self.max_new_tokens = config.max_new_tokens
        self.batch_size = config.batch_size
        self.decode_workers = config.decode_workers
        self.busy_s = 0.0  # seconds spent in generate: the engine's busy time (benchmarks read it)
        self._torch = torch
        self.device = _pick_device(torch, config.device)
        self.dtype = _pick_dtype(torch, config.dtype, self.device)
        self._processor, self._model = _load(transformers, self.model_id, config, self.dtype)
        self._model.to(self.device).eval()

        tokenizer = self._processor.tokenizer
        # Decoder-only generation continues the last token of each row: pad on the left.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._pad_token_id = tokenizer.pad_token_id
        image_processor = getattr(self._processor, "image_processor", None)
        size = getattr(image_processor, "size", None)
        self._shortest_edge = getattr(size, "shortest_edge", None) if size is not None else None
        if isinstance(size, dict):
            self._shortest_edge = size.get("shortest_edge")
        self._resample = getattr(image_processor, "resample", Image.BICUBIC)

    def caption(self, requests: list[CaptionRequest]) -> list[CaptionResult]:
        """One result per request, in order; an unreadable image fails only its own request."""
        results: dict[int, CaptionResult] = {}
        batch: list[tuple[int, Image.Image]] = []
        for index, image in enumerate(self._decoded(requests)):
            if isinstance(image, CaptionResult):
                results[index] = image
            else:
                batch.append((index, image))
            # Batches hold readable images only, so a bad file costs no slot in generate.
            if batch and (len(batch) == self.batch_size or index == len(requests) - 1):
                prompts = [requests[i].prompt for i, _ in batch]
                texts = self._generate([pixels for _, pixels in batch], prompts)
                results.update((i, CaptionResult.ok(text)) for (i, _), text in zip(batch, texts, strict=True))
                batch = []
        return [results[index] for index in range(len(requests))]

    def _decoded(self, requests: list[CaptionRequest]):
        """The requests' images in order, decoded in background threads up to two batches ahead,
        so decoding the next batch overlaps generating this one (the input pipeline)."""
        prepare = self._prepare
        if self.decode_workers == 0:
            yield from (prepare(r.image_path) for r in requests)
            return
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        ahead = 2 * self.batch_size
        with ThreadPoolExecutor(max_workers=self.decode_workers, thread_name_prefix="decode") as pool:
            pending: deque = deque()
            for request in requests:
                pending.append(pool.submit(prepare, request.image_path))
                if len(pending) > ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def _prepare(self, path: Path) -> Image.Image | CaptionResult:
        """Decode, composite on white and, for CLIP-style processors, resize to the vision tower's
        input with the processor's own filter: the costly image work, done off the main thread
        (the processor's resize then finds the image at its size already)."""
        image = open_image(path)
        if isinstance(image, CaptionResult) or self._shortest_edge is None:
            return image
        short, long_side = sorted(image.size)
        if short == self._shortest_edge:
            return image
        scale = self._shortest_edge / short
        size = (
            (self._shortest_edge, int(long_side * scale))
            if image.width <= image.height
            else (int(long_side * scale), self._shortest_edge)
        )
        return image.resize(size, resample=self._resample)

    def format_prompt(self, prompt: str) -> str:
        """The full text the model sees for one request, with the image placeholder in it."""
        return format_prompt(self._processor, prompt)

    def _generate(self, images: list[Image.Image], prompts: list[str]) -> list[str]:
        """Greedy captions for one padded batch; errors of generate itself (OOM) propagate."""
        torch = self._torch
        texts = [self.format_prompt(prompt) for prompt in prompts]
        inputs = self._processor(images=images, text=texts, padding=True, return_tensors="pt")
        inputs = inputs.to(self.device, dtype=self.dtype)  # casts only the floating tensors
        started = time.perf_counter()
        with torch.inference_mode():
            output = self._model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=self._pad_token_id,
            )
        self.busy_s += time.perf_counter() - started
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


def _load(transformers: Any, model_id: str, config: HFBackendConfig, dtype: Any) -> tuple[Any, Any]:
    """Load the processor and model from a local folder, the cache or the Hub, in that order."""
    source, hub_kwargs = model_source(model_id, config.revision, config.hub_timeout_s)
    model_class = getattr(transformers, "AutoModelForImageTextToText", None)
    if model_class is None:  # transformers < 4.46
        model_class = transformers.LlavaForConditionalGeneration
    trust = config.trust_remote_code
    try:
        processor = transformers.AutoProcessor.from_pretrained(source, trust_remote_code=trust, **hub_kwargs)
        model = model_class.from_pretrained(source, dtype=dtype, trust_remote_code=trust, **hub_kwargs)
    except (OSError, ValueError) as error:
        raise HFBackendError(load_failure_message(model_id, source, config.revision, error)) from error
    return processor, model
