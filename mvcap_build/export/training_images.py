"""Views resized and re-encoded for training, kept in `ROOT/cache/training-images/` so that a
re-export (new captions, more objects) encodes only the views it has not encoded before.

A cached file carries the modification time of the view it was made from: a re-rendered view is
a new file with a new time, and is encoded again. Encoding is deterministic for a given Pillow,
so an unchanged root still exports byte-identical shards.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from mvcap_build.dataset import DatasetRoot
from mvcap_build.dataset.export_schema import ExportRow
from mvcap_build.errors import ManifestError
from mvcap_build.export.config import TrainingImagesConfig
from mvcap_build.export.rows import REDO_OBJECT
from mvcap_build.imaging import composite_on_white
from mvcap_build.parallel import ordered_map
from mvcap_build.progress import progress

EXTENSIONS = {"jpeg": ".jpg", "webp": ".webp", "png": ".png"}
_IN_PROCESS_BELOW = 64  # fewer views than this are not worth starting worker processes for


def encode(source: Path, size: int, fmt: str, quality: int) -> bytes:
    """The image at `source` with its shorter side brought down to `size`, encoded as `fmt`.

    Resampling is bicubic, as CLIP's preprocessing; Pillow premultiplies alpha when resizing, so
    transparent edges do not bleed dark fringes. JPEG has no alpha: RGBA goes on white, which is
    what the trainer does with originals.
    """
    with Image.open(source) as image:
        image.draft("RGB", (size, size))  # JPEG sources decode at a reduced scale; others ignore it
        image.load()
        scale = size / min(image.size)
        if scale < 1:
            image = image.resize(
                (round(image.width * scale), round(image.height * scale)), Image.BICUBIC, reducing_gap=3.0
            )
        buffer = io.BytesIO()
        if fmt == "jpeg":
            composite_on_white(image).save(buffer, "JPEG", quality=quality)
        elif fmt == "webp":
            image.save(buffer, "WEBP", quality=quality, method=4)
        else:
            image.save(buffer, "PNG")
    return buffer.getvalue()


def _encode_file(job: tuple[str, str, int, str, int]) -> None:
    source, target, size, fmt, quality = job
    try:
        data = encode(Path(source), size, fmt, quality)
    except (OSError, ValueError, Image.DecompressionBombError) as error:  # UnidentifiedImageError is an OSError
        raise ManifestError(f"{source}: not a readable image ({error}); {REDO_OBJECT}") from None
    mtime = os.stat(source).st_mtime_ns
    temporary = f"{target}.tmp-{os.getpid()}"
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.utime(temporary, ns=(mtime, mtime))
    os.replace(temporary, target)


class TrainingImageCache:
    """Where the training-ready version of each view lives, and bringing those files up to date."""

    def __init__(self, root: DatasetRoot, config: TrainingImagesConfig) -> None:
        self.root = root
        self.config = config
        quality = "" if config.format == "png" else f"-q{config.quality}"
        self.folder = root.path / "cache" / "training-images" / f"{config.name}{quality}"
        self.extension = EXTENSIONS[config.format]

    def file_of(self, row: ExportRow) -> Path:
        return self.folder / (row.path + self.extension)

    def name_of(self, row: ExportRow) -> str:
        """The file name stored with the image bytes (the view's path, flattened, new extension)."""
        return Path(row.path.replace("/", "_")).with_suffix(self.extension).name

    def is_current(self, row: ExportRow) -> bool:
        try:
            return self.file_of(row).stat().st_mtime_ns == (self.root.path / row.path).stat().st_mtime_ns
        except FileNotFoundError:
            return False

    def update(self, rows: Sequence[ExportRow], *, show_progress: bool = True) -> int:
        """Encode every view whose cached file is missing or older than it; return how many."""
        c = self.config
        todo = [row for row in rows if not self.is_current(row)]
        jobs = (self._job(row) for row in todo)
        workers = 1 if len(todo) < _IN_PROCESS_BELOW else (c.workers or os.cpu_count() or 1)
        with progress(f"encode {c.name}", total=len(todo), enabled=show_progress and bool(todo)) as bar:
            for _ in ordered_map(_encode_file, jobs, workers, batch=16):
                bar.advance()
        return len(todo)

    def _job(self, row: ExportRow) -> tuple[str, str, int, str, int]:
        target = self.file_of(row)
        target.parent.mkdir(parents=True, exist_ok=True)
        c = self.config
        return str(self.root.path / row.path), str(target), c.size, c.format, c.quality
