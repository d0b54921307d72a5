"""The throughput captioning backend: a LLaVA-family model on vLLM's offline engine.

vLLM lives in its own environment (its numpy/torch pins conflict with Blender's):
`scripts/setup-vllm-env.sh` creates `.venv-vllm` with this project installed, and captions are run
from there (`.venv-vllm/bin/mvcap caption ROOT --backend vllm --model llava`). vLLM is imported
when a backend is constructed, never when this module is imported, so `identity` (caption
fingerprints) works in any environment.

The prompt is built as the `hf` backend builds it (the processor's chat template, else LLaVA-1.5's
`USER: <image>\n{prompt} ASSISTANT:`), and decoding is greedy, so both backends give the same
captions for the same weights (checked on a tiny LLaVA in float32). The engine is started once per
backend; each `caption` call hands it up to `batch_size` requests and lets vLLM's scheduler batch
them.

On a machine without a GPU (vLLM's CPU build: tests, smoke runs), `VLLM_CPU_KVCACHE_SPACE` (GiB)
defaults to 1 and `VLLM_ENABLE_V1_MULTIPROCESSING` to 0 (the engine runs in this process) when
they are unset. On a GPU vLLM starts its engine in other processes: a script that builds this
backend needs an `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import os
from typing import Any

from PIL import Image

from mvcap_build.caption.backends.base import CaptionRequest, CaptionResult, open_image
from mvcap_build.caption.config import VLLMBackendConfig
from mvcap_build.caption.models import format_prompt, model_source, pinned_revision, resolve_model
from mvcap_build.errors import EnvironmentBroken

SETUP_HINT = (
    "run scripts/setup-vllm-env.sh (it creates .venv-vllm with vLLM and this project), then caption "
    "from that environment: .venv-vllm/bin/mvcap caption ROOT --backend vllm --model ..."
)
_HUB_TIMEOUT_S = 10.0
_CPU_KVCACHE_GIB = "1"


class VLLMBackendError(EnvironmentBroken):
    """vLLM is missing, or its engine cannot start on this model; the message says what to do."""


class VLLMBackend:
    """Caption views with vLLM's offline `LLM` engine, greedily; images go in as multi-modal data."""

    name = "vllm"

    @classmethod
    def identity(cls, config: VLLMBackendConfig) -> dict[str, Any]:
        """What produces the text, for caption fingerprints: the model, its exact weights and the
        settings that change the output (not batch size or parallelism). Imports no vLLM or torch."""
        return {
            "backend": cls.name,
            "model": resolve_model(config.model),
            "revision": pinned_revision(config.model, config.revision, _HUB_TIMEOUT_S),
            "dtype": config.dtype,
            "max_new_tokens": config.max_new_tokens,
            "decoding": "greedy",
            "image_max_side": config.image_max_side,
        }

    def __init__(self, config: VLLMBackendConfig) -> None:
        self.config = config
        self.model_id = resolve_model(config.model)
        self.revision = config.revision
        self.max_new_tokens = config.max_new_tokens
        self.batch_size = config.batch_size
        self.image_max_side = config.image_max_side

        try:
            import torch
        except ImportError as error:
            raise VLLMBackendError(f"the 'vllm' caption backend needs vLLM ({error}): {SETUP_HINT}") from error
        if not torch.cuda.is_available():
            # vLLM's CPU build sizes its KV cache from this (GiB); captions are short.
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", _CPU_KVCACHE_GIB)
            # Without a GPU there is nothing for a separate engine process to overlap with; in
            # this process the engine starts in ~10 s instead of ~30 s (no spawned interpreters
            # importing vLLM) and needs no `__main__` guard.
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            import transformers
            import vllm
        except ImportError as error:
            raise VLLMBackendError(f"the 'vllm' caption backend needs vLLM ({error}): {SETUP_HINT}") from error

        # A folder, the cached snapshot of a Hub id, or (not cached) the Hub id itself; fails fast
        # with a message that says what to do when the model is nowhere to be had.
        source, hub_kwargs = model_source(self.model_id, config.revision, _HUB_TIMEOUT_S)
        processor = _load_processor(transformers, source, hub_kwargs, config.trust_remote_code)
        self._processor = processor
        engine_args: dict[str, Any] = {
            "model": source,
            "revision": hub_kwargs.get("revision"),
            "dtype": config.dtype,
            "tensor_parallel_size": config.tensor_parallel_size,
            "gpu_memory_utilization": config.gpu_memory_utilization,
            "enforce_eager": config.enforce_eager,
            "limit_mm_per_prompt": {"image": config.limit_mm_per_prompt},
            "trust_remote_code": config.trust_remote_code,
        }
        if config.max_num_batched_tokens is not None:
            engine_args["max_num_batched_tokens"] = config.max_num_batched_tokens
        if config.max_model_len is not None:
            engine_args["max_model_len"] = config.max_model_len
        try:
            self._llm = vllm.LLM(**engine_args)
        except Exception as error:  # vLLM raises many kinds; all mean the engine cannot run
            raise VLLMBackendError(
                f"vLLM could not start on caption model {self.model_id!r} ({type(error).__name__}: {error}). "
                "Check that the model is a LLaVA-family checkpoint in the Hub layout, that it fits "
                "(gpu_memory_utilization, max_model_len, tensor_parallel_size; on CPU the KV cache is "
                "VLLM_CPU_KVCACHE_SPACE GiB), and that the script creating the backend has an "
                '`if __name__ == "__main__":` guard.'
            ) from error
        # The engine returns token ids; they are decoded here in one batch with the processor's
        # tokenizer, as the hf backend decodes them. vLLM's incremental detokenizer would drop a
        # multi-byte character cut off by max_tokens where `decode` writes U+FFFD, so the same
        # tokens would make different captions in the two backends.
        self._tokenizer = getattr(processor, "tokenizer", None) or self._llm.get_tokenizer()
        self._sampling = vllm.SamplingParams(temperature=0.0, max_tokens=config.max_new_tokens, detokenize=False)

    def format_prompt(self, prompt: str) -> str:
        """The full text the model sees for one request, with the image placeholder in it."""
        return format_prompt(self._processor, prompt)

    def caption(self, requests: list[CaptionRequest]) -> list[CaptionResult]:
        """One result per request, in order; an unreadable image fails only its own request."""
        results: dict[int, CaptionResult] = {}
        batch: list[tuple[int, dict[str, Any]]] = []
        for index, request in enumerate(requests):
            image = open_image(request.image_path)
            if isinstance(image, CaptionResult):
                results[index] = image
            else:
                image = _downscale(image, self.image_max_side)
                batch.append(
                    (index, {"prompt": self.format_prompt(request.prompt), "multi_modal_data": {"image": image}})
                )
            if batch and (len(batch) == self.batch_size or index == len(requests) - 1):
                results.update(self._generate(batch))
                batch = []
        return [results[index] for index in range(len(requests))]

    def _generate(self, batch: list[tuple[int, dict[str, Any]]]) -> dict[int, CaptionResult]:
        """Captions for one engine call. vLLM rejects a whole call when one input is invalid (a
        prompt longer than max_model_len, an image it cannot process): then each request is
        retried alone, so only the bad one fails. A dead engine raises."""
        try:
            outputs = self._llm.generate([inputs for _, inputs in batch], self._sampling, use_tqdm=False)
        except (ValueError, TypeError) as error:
            if len(batch) == 1:
                return {batch[0][0]: CaptionResult.failed("generation_failed", f"{type(error).__name__}: {error}")}
            results: dict[int, CaptionResult] = {}
            for item in batch:
                results.update(self._generate([item]))
            return results
        decode = self._tokenizer.decode
        return {
            index: CaptionResult.ok(decode(list(output.outputs[0].token_ids), skip_special_tokens=True).strip())
            for (index, _), output in zip(batch, outputs, strict=True)
        }


def _load_processor(transformers: Any, source: str, hub_kwargs: dict[str, Any], trust_remote_code: bool) -> Any:
    """The model's processor (chat template and tokenizer), or None when it has none that loads;
    prompts then use LLaVA-1.5's format and vLLM's own tokenizer decodes."""
    try:
        return transformers.AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code, **hub_kwargs)
    except (OSError, ValueError):
        return None


def _downscale(image: Image.Image, max_side: int | None) -> Image.Image:
    """The image with its longer side at most `max_side` pixels (aspect kept); unchanged if None."""
    if max_side is None or max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


__all__ = ["SETUP_HINT", "VLLMBackend", "VLLMBackendError"]
