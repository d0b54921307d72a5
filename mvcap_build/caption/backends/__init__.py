"""Caption backends. Each is a small class with `name`, `model_id`, `identity(config)` (what
produces the text, for fingerprints, without loading a model) and `caption(requests)`; they are
registered by their YAML `kind:` in `mvcap_build.registry.CAPTION_BACKENDS`, with one config
class each in `mvcap_build.caption.config`."""

from mvcap_build.caption.backends.base import CaptionBackend, CaptionRequest, CaptionResult

__all__ = ["CaptionBackend", "CaptionRequest", "CaptionResult"]
