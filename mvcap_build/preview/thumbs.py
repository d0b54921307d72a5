"""One thumbnail sprite per object: all its views side by side, each fitted into a square cell.

One file per object (not per view) keeps a 100K-object preview at ~100K small files, which the
page shows tile by tile by positioning the sprite inside each view's frame. Files sit under
`thumbs/<source>/<2 hex digits of the key's hash>/`, so no folder grows past a few thousand.

A sprite's name carries a digest of what it shows: the views manifest's size, modification time
and fingerprint, the cell size and this module's layout. A views folder is committed as a whole
with its manifest written last, so new views mean a new manifest and a new name; a rerun reuses
every sprite whose name already exists. Images edited by hand in place are not noticed.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, features

from mvcap_build.dataset import ViewsManifest, atomic_write_bytes
from mvcap_build.dataset.keys import path_component, split_key
from mvcap_build.imaging import WHITE, composite_on_white

SPRITE_VERSION = 1  # bump when the layout or encoding changes: every sprite is remade
MAX_COLUMNS = 16  # 1000 views of 128 px stay within WebP's 16383 px limit
QUALITY = 82
WEBP_METHOD = 2  # measured on 12-view sprites: 4.5 ms a sprite against 10 ms at the default 4, 5% larger
FORMAT, EXTENSION = ("WEBP", "webp") if features.check("webp") else ("JPEG", "jpg")


@dataclass(frozen=True)
class SpriteLayout:
    cell: int  # pixels per side of one view's square cell
    columns: int
    rows: int

    @classmethod
    def of(cls, manifest: ViewsManifest, thumb_size: int) -> SpriteLayout:
        """Cells never upscale: 32 px renders make 32 px cells, which the page enlarges."""
        largest = max(max(view.width, view.height) for view in manifest.views)
        columns = min(len(manifest.views), MAX_COLUMNS)
        return cls(
            cell=max(1, min(thumb_size, largest)), columns=columns, rows=math.ceil(len(manifest.views) / columns)
        )


def sprite_relpath(key: str, manifest_path: Path, manifest: ViewsManifest, layout: SpriteLayout) -> str:
    """Where the sprite of these views lives, relative to the preview folder."""
    stat = manifest_path.stat()
    fingerprint = manifest.fingerprint.digest if manifest.fingerprint else "-"
    what = (
        f"{key}|{stat.st_size}|{stat.st_mtime_ns}|{fingerprint}|{layout}|"
        f"{SPRITE_VERSION}|{FORMAT}|{QUALITY}|{WEBP_METHOD}"
    )
    digest = hashlib.sha256(what.encode("utf-8")).hexdigest()[:16]
    source, source_id = split_key(key)
    bucket = hashlib.sha1(key.encode("utf-8")).hexdigest()[:2]
    return f"thumbs/{source}/{bucket}/{path_component(source_id)}-{digest}.{EXTENSION}"


def ensure_sprite(out: Path, relpath: str, view_dir: Path, manifest: ViewsManifest, layout: SpriteLayout) -> bool:
    """Write the sprite unless it exists; True when it was made. Older sprites of the object go."""
    target = out / relpath
    if target.is_file():
        return False
    atomic_write_bytes(target, encode(render_sprite(view_dir, manifest, layout)))
    _remove_older(target)
    return True


def render_sprite(view_dir: Path, manifest: ViewsManifest, layout: SpriteLayout) -> Image.Image:
    sprite = Image.new("RGB", (layout.columns * layout.cell, layout.rows * layout.cell), WHITE)
    for position, view in enumerate(manifest.views):
        image = _fitted(view_dir / view.file, layout.cell)
        row, column = divmod(position, layout.columns)
        x = column * layout.cell + (layout.cell - image.width) // 2
        y = row * layout.cell + (layout.cell - image.height) // 2
        sprite.paste(image, (x, y))
    return sprite


def _fitted(path: Path, cell: int) -> Image.Image:
    """The view shrunk to fit the cell, on white. `thumbnail` decodes JPEGs at reduced scale
    (`draft`) and shrinks by whole factors first (`reduce`), so large captures stay cheap."""
    with Image.open(path) as image:
        image.thumbnail((cell, cell), Image.Resampling.BILINEAR, reducing_gap=2.0)
        return composite_on_white(image)


def encode(sprite: Image.Image) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    sprite.save(buffer, FORMAT, quality=QUALITY, **({"method": WEBP_METHOD} if FORMAT == "WEBP" else {}))
    return buffer.getvalue()


def _remove_older(target: Path) -> None:
    """Sprites of earlier views of the same object: same id, another digest."""
    stem = target.stem.rsplit("-", 1)[0]
    pattern = re.compile(rf"{re.escape(stem)}-[0-9a-f]{{16}}\.{EXTENSION}")
    for sibling in target.parent.iterdir():
        if sibling != target and pattern.fullmatch(sibling.name):
            sibling.unlink(missing_ok=True)
