"""The portable captioning backend: a LLaVA-family model run with transformers.

Slower than vLLM, but it runs wherever torch does (CPU included) and shares an environment with
Blender. torch and transformers are imported when a backend is constructed, never when this module
is imported, so `mvcap --help` stays light.

A Hub id is loaded from the local Hugging Face cache when it is there, without any request. Only
when it is not is the Hub asked, once and briefly: transformers' own downloads retry every file
with backoff, which offline turns "model not found" into minutes of retry messages.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from PIL import Image

from mvcap_build import hub_models
from mvcap_build.caption.backends.base import CaptionRequest, CaptionResult
from mvcap_build.errors import EnvironmentBroken
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
_COMMIT = re.compile(r"[0-9a-f]{40}")
# What PIL raises for a missing, truncated or non-image file (broken PNG chunks raise SyntaxError).
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class HFBackendError(EnvironmentBroken):
    """The environment or the model cannot run this backend; the message says what to do."""


def resolve_model(model: str) -> str:
    """Turn an alias into its Hub id; return Hub ids and paths unchanged."""
    return MODEL_ALIASES.get(model, model)


def model_revision(model: str, revision: str | None = None) -> str:
    """Which weights `model` means, for fingerprinting captions; reads only local files.

    A local folder: "local:" + a hash of its config.json and its weight files' names and sizes
    (hashing gigabytes of weights would cost more than captioning). A Hub id in the cache: the
    commit of its snapshot. Otherwise the explicit revision, or "unresolved".
    """
    return hub_models.local_revision(resolve_model(model), revision)


def pinned_revision(model: str, revision: str | None = None, hub_timeout_s: float = 10.0) -> str:
    """The commit `model` stands for, as `model_revision` finds it locally, or else as the Hub
    says (one short request): every node of a cluster records the same weights under the same
    name, whether it had them cached or downloads them. Fails fast when neither can tell."""
    found = model_revision(model, revision)
    if found.startswith("local:") or _COMMIT.fullmatch(found):
        return found
    return _hub_commit(resolve_model(model), revision, hub_timeout_s) or found


class HFBackend:
    """Caption views with a transformers image-text-to-text model, greedily, in batches."""

    name = "hf"

    @classmethod
    def identity(cls, config) -> dict[str, Any]:
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

    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        batch_size: int = 8,
        max_new_tokens: int = 77,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
        hub_timeout_s: float = 10.0,
        decode_workers: int = 2,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        if hub_timeout_s <= 0:
            raise ValueError(f"hub_timeout_s must be positive, got {hub_timeout_s}")
        try:
            import torch
            import transformers
        except ImportError as error:
            raise HFBackendError(
                f"the 'hf' caption backend needs torch and transformers ({error}); "
                f"install them with: {_INSTALL_HINT}"
            ) from error

        self.model_id = resolve_model(model)
        self.revision = revision
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.decode_workers = decode_workers
        self.busy_s = 0.0  # seconds spent in generate: the engine's busy time (benchmarks read it)
        self._torch = torch
        self.device = _pick_device(torch, device)
        self.dtype = _pick_dtype(torch, dtype, self.device)
        self._processor, self._model = _load(
            transformers, self.model_id, revision, self.dtype, trust_remote_code, hub_timeout_s
        )
        self._model.to(self.device).eval()

        tokenizer = self._processor.tokenizer
        # Decoder-only generation continues the last token of each row: pad on the left.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._pad_token_id = tokenizer.pad_token_id
        self._has_chat_template = bool(getattr(self._processor, "chat_template", None))
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
        image = _open_image(path)
        if isinstance(image, CaptionResult) or self._shortest_edge is None:
            return image
        short, long_side = sorted(image.size)
        if short == self._shortest_edge:
            return image
        scale = self._shortest_edge / short
        size = (self._shortest_edge, int(long_side * scale)) if image.width <= image.height else (int(long_side * scale), self._shortest_edge)
        return image.resize(size, resample=self._resample)

    def format_prompt(self, prompt: str) -> str:
        """The full text the model sees for one request, with the image placeholder in it."""
        if self._has_chat_template:
            conversation = [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
            ]
            return self._processor.apply_chat_template(conversation, add_generation_prompt=True)
        return _LLAVA_15_FORMAT.format(prompt=prompt)

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


def _open_image(path: Path) -> Image.Image | CaptionResult:
    """The decoded image, or the failure of this one request when the file cannot be read."""
    try:
        return load_rgb(path)
    except _IMAGE_ERRORS as error:
        return CaptionResult.failed("unreadable_image", f"{path}: {type(error).__name__}: {error}")


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


def _load(
    transformers: Any, model_id: str, revision: str | None, dtype: Any, trust_remote_code: bool, timeout_s: float
) -> tuple[Any, Any]:
    """Load the processor and model from a local folder, the cache or the Hub, in that order."""
    source, hub_kwargs = _model_source(model_id, revision, timeout_s)
    model_class = getattr(transformers, "AutoModelForImageTextToText", None)
    if model_class is None:  # transformers < 4.46
        model_class = transformers.LlavaForConditionalGeneration
    try:
        processor = transformers.AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code, **hub_kwargs)
        model = model_class.from_pretrained(source, dtype=dtype, trust_remote_code=trust_remote_code, **hub_kwargs)
    except (OSError, ValueError) as error:
        raise HFBackendError(_load_failure_message(model_id, source, revision, error)) from error
    return processor, model


def _model_source(model_id: str, revision: str | None, hub_timeout_s: float) -> tuple[str, dict[str, Any]]:
    """What to hand to from_pretrained: a folder (local or cached snapshot), or a Hub id to download.

    A cached model is loaded from its snapshot folder rather than as a Hub id with
    local_files_only: transformers 5 still sends HEAD requests, with retries, for files it looks
    up beside the model (adapter_config.json when peft is installed), and huggingface_hub fetches
    its agent registry whenever it builds request headers.
    """
    if _looks_like_path(model_id):
        if not Path(model_id).expanduser().is_dir():
            raise HFBackendError(
                f"caption model directory {model_id!r} does not exist. Pass a directory written by "
                f"save_pretrained, a Hub id (owner/name) or one of: {', '.join(MODEL_ALIASES)}."
            )
        return model_id, {}
    cached_config = _cached_config(model_id, revision)
    if cached_config is not None:
        return str(cached_config.parent), {"local_files_only": True}
    _hub_commit(model_id, revision, hub_timeout_s)
    return model_id, {"revision": revision}


def _hub_commit(model_id: str, revision: str | None, hub_timeout_s: float) -> str | None:
    """The commit the Hub serves for a model that is not cached; fails fast when it cannot be asked."""
    if _offline_requested():
        raise HFBackendError(
            f"caption model {model_id!r} is not in the local Hugging Face cache {_cache_dir()}, and "
            f"HF_HUB_OFFLINE is set, so the Hub is not asked. Download it on a machine with network "
            f"(`{_download_command(model_id, revision)}`) into this cache, point --model at a local "
            f"folder, or unset HF_HUB_OFFLINE."
        )
    return _probe_hub(model_id, revision, hub_timeout_s)


def _probe_hub(model_id: str, revision: str | None, timeout_s: float) -> str | None:
    """Ask the Hub once whether it serves `model_id` (return the commit it would serve), and raise
    within `timeout_s` if not (see `hub_models.ask_hub`)."""
    try:
        info = hub_models.ask_hub(model_id, revision, timeout_s)
    except Exception as error:  # reported in the message, whatever it is
        raise HFBackendError(_probe_failure_message(model_id, revision, error)) from error
    return info.sha if info is not None else None


def _probe_failure_message(model_id: str, revision: str | None, error: Exception) -> str:
    hub, failure = hub_models.hub_name(), hub_models.hub_failure(error)
    if failure == "revision":
        return f"caption model {model_id!r} has no revision {revision!r} on {hub}: pass a branch, tag or commit."
    if failure == "gated":
        return (
            f"caption model {model_id!r} is gated on {hub}: accept its terms on the model page and set "
            f"HF_TOKEN to a token of that account (or run `hf auth login`)."
        )
    if failure == "missing":
        return (
            f"caption model {model_id!r} does not exist on {hub}, or it is private and needs a token: "
            f"check the name, or set HF_TOKEN (or run `hf auth login`)."
        )
    return (
        f"cannot reach {hub} ({type(error).__name__}: {error}), and {model_id!r} is not in the local "
        f"cache {_cache_dir()}: download it first (`{_download_command(model_id, revision)}`), point "
        f"--model at a local folder, or set HF_HUB_OFFLINE=1 to use only the cache."
    )


def _cached_config(model_id: str, revision: str | None) -> Path | None:
    """The config.json of `model_id`'s cached snapshot (revision or main), or None; no network."""
    return hub_models.cached_file(model_id, "config.json", revision)


_offline_requested = hub_models.offline_requested
_cache_dir = hub_models.cache_dir
_download_command = hub_models.download_command
_looks_like_path = hub_models.looks_like_path


def _load_failure_message(model_id: str, source: str, revision: str | None, error: Exception) -> str:
    lines = [f"cannot load caption model {model_id!r}: {error}"]
    if _looks_like_path(model_id):
        lines.append(
            "It was read as a local directory: it must hold config.json, the weights and the "
            "processor files, as written by save_pretrained."
        )
    else:
        where = f"its cached copy {source} is incomplete" if source != model_id else "the download failed"
        lines.append(
            f"It was read as a Hub id and {where}: fetch it again "
            f"(`{_download_command(model_id, revision)}`) or pass a local directory that holds the model."
        )
    return "\n".join(lines)
