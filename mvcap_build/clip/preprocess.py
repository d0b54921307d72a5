"""Image preprocessing for CLIP, from the model's `preprocessor_config.json`, in PIL + numpy.

transformers' own image processors now go through torchvision, which cannot share a CPU
environment with our torch pin; CLIP's recipe (resize the short side, centre crop, scale,
normalise) is short enough to do here, reading the mean/std/size the checkpoint ships.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mvcap_build.errors import ConfigError
from mvcap_build.imaging import composite_on_white

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PREPROCESSOR_FILE = "preprocessor_config.json"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageTransform:
    """RGBA/RGB PIL image -> float32 (3, size, size) array, normalised as the model was trained."""

    size: int = 224
    mean: tuple[float, ...] = field(default=CLIP_MEAN)
    std: tuple[float, ...] = field(default=CLIP_STD)

    def __call__(self, image: Image.Image):
        import torch

        image = composite_on_white(image)  # renders are RGBA; CLIP saw objects on white
        w, h = image.size
        scale = self.size / min(w, h)
        image = image.resize((max(self.size, round(w * scale)), max(self.size, round(h * scale))), Image.BICUBIC)
        w, h = image.size
        left, top = (w - self.size) // 2, (h - self.size) // 2
        image = image.crop((left, top, left + self.size, top + self.size))
        array = (np.asarray(image, dtype=np.float32) / 255.0 - self.mean) / self.std
        return torch.from_numpy(array.transpose(2, 0, 1).astype(np.float32))

    def from_bytes(self, data: bytes):
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return self(image)

    def to_dict(self) -> dict:
        """A `preprocessor_config.json` that this class (and CLIPImageProcessor) reads back."""
        return {
            "image_processor_type": "CLIPImageProcessor",
            "do_resize": True,
            "size": {"shortest_edge": self.size},
            "resample": 3,
            "do_center_crop": True,
            "crop_size": {"height": self.size, "width": self.size},
            "do_rescale": True,
            "rescale_factor": 1 / 255,
            "do_normalize": True,
            "image_mean": list(self.mean),
            "image_std": list(self.std),
            "do_convert_rgb": True,
        }

    @classmethod
    def from_config(cls, config: dict, size: int | None = None) -> ImageTransform:
        """Build from a preprocessor config dict; `size` (the vision tower's) wins over its crop."""
        crop = config.get("crop_size", 224)
        crop = crop.get("height", 224) if isinstance(crop, dict) else int(crop)
        return cls(
            size=size or crop,
            mean=tuple(config.get("image_mean", CLIP_MEAN)),
            std=tuple(config.get("image_std", CLIP_STD)),
        )

    @classmethod
    def from_pretrained(cls, model: str | Path, size: int | None = None) -> ImageTransform:
        """Read `preprocessor_config.json` from a local dir or the Hub cache; CLIP's defaults if absent."""
        path = Path(model) / PREPROCESSOR_FILE
        if not path.is_file():  # a folder without one is not asked about on the Hub
            path = None if Path(model).is_dir() else _hub_file(str(model), PREPROCESSOR_FILE)
        if path is None:
            log.warning("%s has no %s: using CLIP's default mean/std", model, PREPROCESSOR_FILE)
            return cls.from_config({}, size)
        try:
            config = json.loads(path.read_text())
            return cls.from_config(config, size)
        except (ValueError, TypeError, AttributeError) as error:
            raise ConfigError(
                f"{path}: not a readable image preprocessor config ({error}): "
                "write it again with the model's save_pretrained, or delete it for CLIP's defaults"
            ) from None


def _hub_file(repo_id: str, filename: str) -> Path | None:
    """The file from the Hub (or its local cache), or None where it cannot be had."""
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id, filename))
    except Exception:  # missing file, offline, not a repo id: CLIP defaults are the right fallback
        return None
