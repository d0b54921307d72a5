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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Text and time chunks: Blender writes render times into them (`cycles.ViewLayer.total_time`),
# so two renders with equal pixels would differ in bytes. Nothing downstream reads them.
_METADATA_CHUNKS = {b"tEXt", b"zTXt", b"iTXt", b"tIME"}


def strip_png_metadata(data: bytes) -> bytes:
    """The same PNG without text and time chunks: equal pixels give equal bytes.

    Works chunk by chunk on the encoded file, so the image data is copied, never re-encoded.
    """
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    kept, position = [PNG_SIGNATURE], len(PNG_SIGNATURE)
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        end = position + 12 + length  # length, type, data, CRC
        if end > len(data):
            raise ValueError("truncated PNG chunk")
        if kind not in _METADATA_CHUNKS:
            kept.append(data[position:end])
        position = end
        if kind == b"IEND":
            break
    return b"".join(kept)


def png_chunk_types(data: bytes) -> list[bytes]:
    """The chunk types of a PNG file in order (for checks and tests)."""
    types, position = [], len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        types.append(data[position + 4 : position + 8])
        position += 12 + length
    return types
