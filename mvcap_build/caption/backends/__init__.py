"""Caption backends. Each is a small class with `name`, `model_id`, `identity(config)` (what
produces the text, for fingerprints, without loading a model) and `caption(requests)`, built from
its config object (one class each in `mvcap_build.caption.config`). They are registered by their
YAML `kind:` in `caption/backends/registry.py`, each in the module of that name."""

from mvcap_build.caption.backends.base import CaptionBackend, CaptionRequest, CaptionResult

__all__ = ["CaptionBackend", "CaptionRequest", "CaptionResult"]
