"""How a rendered view looks, in numbers: how much of the frame the object fills, whether it is
cut by the border, how bright and how shaded it is. For checks of framing and lighting (tests,
benchmarks) and for filtering renders later."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# Rec. 709 luma weights, on the 0-255 sRGB values: a plain, common measure of brightness.
_LUMA = np.array([0.2126, 0.7152, 0.0722])


@dataclass(frozen=True)
class ViewStats:
    coverage: float  # fraction of pixels with alpha > 0
    touches_border: bool  # an opaque pixel (alpha > 127) on the outermost row or column
    brightness: float  # mean luma of the object's pixels (alpha > 127), 0-255
    contrast: float  # std / mean of that luma: how much shading the object shows


def view_stats(path: Path) -> ViewStats:
    with Image.open(path) as image:
        rgba = np.asarray(image.convert("RGBA")).astype(np.float64)
    alpha = rgba[..., 3]
    solid = alpha > 127
    border = np.concatenate([solid[0], solid[-1], solid[:, 0], solid[:, -1]])
    luma = rgba[..., :3][solid] @ _LUMA
    mean = float(luma.mean()) if luma.size else 0.0
    return ViewStats(
        coverage=float((alpha > 0).mean()),
        touches_border=bool(border.any()),
        brightness=mean,
        contrast=float(luma.std() / mean) if mean > 0 else 0.0,
    )
