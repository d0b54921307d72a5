"""The caption backends by their YAML `kind:`; each module's name equals its key."""

from __future__ import annotations

from mvcap_build.caption.config import HFBackendConfig, OpenAIBackendConfig, TemplateBackendConfig, VLLMBackendConfig
from mvcap_build.plugins import Entry, Registry

CAPTION_BACKENDS = Registry(
    "caption backend",
    Entry("template", "mvcap_build.caption.backends.template:TemplateBackend", TemplateBackendConfig),
    Entry("hf", "mvcap_build.caption.backends.hf:HFBackend", HFBackendConfig),
    Entry("openai", "mvcap_build.caption.backends.openai:OpenAIBackend", OpenAIBackendConfig),
    Entry("vllm", "mvcap_build.caption.backends.vllm:VLLMBackend", VLLMBackendConfig),
)
