"""The paper's augmentation of the multi-view images, applied before CLIP's preprocessing."""

from __future__ import annotations

import numpy as np
from PIL import Image

from mvcap_build.imaging import composite_on_white


def augment_view(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The paper's RandomRotation(90) + RandomAffine(translate=0.1), filling with white: a render's
    background, so a rotated object stays on the background CLIP sees it on."""
    image = composite_on_white(image)
    width, height = image.size
    angle = float(rng.uniform(-90, 90))
    shift = (round(rng.uniform(-0.1, 0.1) * width), round(rng.uniform(-0.1, 0.1) * height))
    return image.rotate(angle, resample=Image.BILINEAR, translate=shift, fillcolor=(255, 255, 255))
