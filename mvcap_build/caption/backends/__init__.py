"""Caption backends, by the name used in YAML and on the command line.

The registry maps names to import paths so that choosing `template` never imports torch.
"""

from __future__ import annotations

import importlib

from mvcap_build.caption.backends.base import CaptionBackend, CaptionRequest

BACKENDS: dict[str, str] = {
    "template": "mvcap_build.caption.backends.template:TemplateBackend",
    "hf": "mvcap_build.caption.backends.hf:HFBackend",
}


def create_backend(config) -> CaptionBackend:
    if config.backend not in BACKENDS:
        raise ValueError(f"unknown caption backend {config.backend!r}; choose from {sorted(BACKENDS)}")
    module_name, _, class_name = BACKENDS[config.backend].partition(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    if config.backend == "template":
        return backend_class()
    if not config.model:
        raise ValueError(f"caption backend {config.backend!r} needs a model (--model llava, a Hub id or a folder)")
    return backend_class(
        config.model,
        device=config.device,
        dtype=config.dtype,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.batch_size,
    )


__all__ = ["BACKENDS", "CaptionBackend", "CaptionRequest", "create_backend"]
