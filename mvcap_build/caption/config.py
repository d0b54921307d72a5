"""Settings of the caption stage: the prompt, plus one config class per backend.

`backend` is a discriminated union on `kind` (the registry name), as render sources are, so each
backend validates only its own settings. In YAML, `backend: template` is short for
`backend: {kind: template}`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mvcap_build.config_io import PATH_IF_EXISTS
from mvcap_build.errors import ConfigError


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemplateBackendConfig(_Config):
    """No model: a category-guided sentence from the object's metadata (offline demos, tests)."""

    kind: Literal["template"] = "template"


class HFBackendConfig(_Config):
    """transformers `generate` on a LLaVA-family image-text-to-text model."""

    kind: Literal["hf"] = "hf"
    model: str = Field(
        "llava", json_schema_extra=PATH_IF_EXISTS
    )  # an alias ("llava" = llava-hf/llava-1.5-7b-hf), a Hub id or a local folder
    revision: str | None = None  # Hub branch, tag or commit; None = the cached or latest main
    batch_size: int = Field(8, ge=1)  # images per generate() call
    max_new_tokens: int = Field(77, ge=1)  # CLIP reads at most 77 tokens anyway
    device: str = "auto"  # auto: cuda when available, else cpu
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"  # auto: bf16/fp16 on GPU, fp32 on CPU
    trust_remote_code: bool = False
    hub_timeout_s: float = Field(10.0, gt=0)  # how long to wait for the Hub before saying it is unreachable
    decode_workers: int = Field(2, ge=0)  # threads decoding the next batches' images during generate; 0: inline


class OpenAIBackendConfig(_Config):
    """Any OpenAI-compatible chat-completions server (vLLM's, SGLang's, hosted APIs), images sent
    as data URLs. The API key is read from the environment variable named here, never stored."""

    kind: Literal["openai"] = "openai"
    model: str  # the model name the server serves
    base_url: str | None = None  # None: $OPENAI_BASE_URL, else https://api.openai.com/v1
    api_key_env: str = "OPENAI_API_KEY"  # the variable holding the key (may be unset for local servers)
    max_concurrency: int = Field(8, ge=1)  # requests in flight at once
    timeout_s: float = Field(60.0, gt=0)  # per request
    retries: int = Field(4, ge=0)  # on 429, 5xx, timeouts and connection errors, with backoff
    backoff_s: float = Field(1.0, ge=0)
    max_new_tokens: int = Field(77, ge=1)  # sent as max_tokens
    temperature: float = Field(
        0.0, ge=0
    )  # 0: greedy, so a rerun gives the same captions where the server is deterministic
    image_max_side: int = Field(512, ge=32)  # images are downscaled to this before encoding
    image_format: Literal["png", "jpeg"] = "jpeg"


class VLLMBackendConfig(_Config):
    """vLLM's offline engine on a LLaVA-family model, in its own environment
    (`scripts/setup-vllm-env.sh`, then `.venv-vllm/bin/mvcap caption ...`)."""

    kind: Literal["vllm"] = "vllm"
    model: str = Field(
        "llava", json_schema_extra=PATH_IF_EXISTS
    )  # an alias ("llava" = llava-hf/llava-1.5-7b-hf), a Hub id or a local folder
    revision: str | None = None  # Hub branch, tag or commit; None = the cached or latest main
    max_new_tokens: int = Field(77, ge=1)  # CLIP reads at most 77 tokens anyway
    tensor_parallel_size: int = Field(1, ge=1)  # GPUs one engine spans
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)  # share of each GPU's memory the engine takes
    max_num_batched_tokens: int | None = Field(None, ge=1)  # None: vLLM's default
    max_model_len: int | None = Field(None, ge=1)  # None: the model's own context length
    # auto: vLLM picks from the checkpoint; float32 on CPU to match hf exactly.
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    enforce_eager: bool = False  # True: no CUDA graphs / compilation (faster start, slower steady state)
    limit_mm_per_prompt: int = Field(1, ge=1)  # images per prompt the engine reserves memory for
    batch_size: int = Field(256, ge=1)  # requests per generate() call; the engine schedules within it
    image_max_side: int | None = Field(None, ge=32)  # downscale larger images before the engine; None: as stored
    trust_remote_code: bool = False


BackendConfig = Annotated[
    TemplateBackendConfig | HFBackendConfig | OpenAIBackendConfig | VLLMBackendConfig, Field(discriminator="kind")
]

# Backends that run a model (every one but `template`); `--model` without `--backend` picks the first.
_MODEL_BACKEND_CONFIGS = (HFBackendConfig, VLLMBackendConfig, OpenAIBackendConfig)
MODEL_BACKENDS = tuple(config.model_fields["kind"].default for config in _MODEL_BACKEND_CONFIGS)


class GatesConfig(_Config):
    """Quality gates (see `caption/gates.py`) and how often a failing view is asked again."""

    enabled: bool = True
    max_clip_tokens: int | None = Field(77, ge=2)  # CLIP reads 77 tokens (start and end included); None: no limit
    require_category: bool = True  # the caption must name the category (plural and synonyms count)
    min_similarity: float = Field(0.2, ge=0, le=1)  # sentence-embedding cosine to "a photo of a {category}"; 0: off
    max_objects_per_caption: int = Field(20, ge=0)  # the same caption on more objects is a duplicate; 0: off
    synonyms: dict[str, list[str]] = Field(default_factory=dict)  # category -> more words that name it
    retries: int = Field(2, ge=0)  # times a failing view is asked again, with `retry_prompt` added
    retry_prompt: str = "Answer in one short sentence of at most 25 words that names the {category}."


class CaptionConfig(_Config):
    prompt: str = Field(
        "category_guided", json_schema_extra=PATH_IF_EXISTS
    )  # a template name in prompts/ or a path to a .txt file
    backend: BackendConfig = Field(default_factory=TemplateBackendConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)

    @field_validator("backend", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _backend_settings_belong_to_the_backend(cls, data: Any) -> Any:
        misplaced = sorted(set(data) - set(cls.model_fields)) if isinstance(data, dict) else []
        backend_fields = {name for config in _MODEL_BACKEND_CONFIGS for name in config.model_fields}
        if misplaced and set(misplaced) <= backend_fields:
            raise ValueError(
                f"{', '.join(misplaced)} belong under `backend:`, "
                "e.g. backend: {kind: hf, model: llava, batch_size: 16}"
            )
        return data


def apply_backend_flags(
    section: dict[str, Any], backend: str | None, model: str | None, settings: dict[str, Any]
) -> dict[str, Any]:
    """Command-line flags over a file's `caption:` section.

    A model given without a backend picks a model backend, never `template`; switching backend
    drops the other backend's settings, which would not apply.
    """
    data = dict(section)
    current = data.get("backend") or {}
    current = {"kind": current} if isinstance(current, str) else dict(current)
    kind = backend or current.get("kind") or "template"
    if backend is None and model is not None and kind not in MODEL_BACKENDS:
        kind = MODEL_BACKENDS[0]
    if kind == "template" and model is not None:
        raise ConfigError(f"the template backend uses no model: drop --model, or pass --backend {MODEL_BACKENDS[0]}")
    if kind != current.get("kind"):
        current = {}
    current["kind"] = kind
    if model is not None:
        current["model"] = model
    current.update({name: value for name, value in settings.items() if value is not None})
    data["backend"] = current
    return data
