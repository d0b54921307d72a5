"""Image helpers shared by every stage that reads views (captioning, training, previews)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

WHITE = (255, 255, 255)


def composite_on_white(image: Image.Image) -> Image.Image:
    """RGBA renders have a transparent background; models see them on white, as in MVCap."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image file and return it as RGB on a white background."""
    with Image.open(path) as image:
        image.load()
        return composite_on_white(image)
