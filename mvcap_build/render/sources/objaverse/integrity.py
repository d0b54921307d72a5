"""Cheap checks that a downloaded file is whole: a GLB's header, a gzip stream's CRC.

A truncated or garbled download must never be placed under its final name, because a file
there counts as "downloaded" forever after.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

_GLB_MAGIC = b"glTF"
_GLB_JSON_CHUNK = 0x4E4F534A  # "JSON": the first chunk of every GLB 2.0


class IntegrityError(ValueError):
    """The bytes on disk are not a whole file of the expected kind."""


def check_glb(path: Path) -> None:
    """A binary glTF 2.0 whose header's total length equals the file size.

    The length field catches a cut file without reading it; the first chunk header catches a
    file that merely starts with the right magic.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20:
        raise IntegrityError(
            "an empty file (0 bytes), not a GLB" if size == 0 else f"{size} bytes, too short for a GLB (at least 20)"
        )
    magic, version, length, _, chunk_type = struct.unpack("<4sIIII", header)
    if magic != _GLB_MAGIC:
        raise IntegrityError(f"not a GLB: {size} bytes starting with {magic!r}, expected b'glTF'")
    if version != 2:
        raise IntegrityError(f"GLB version {version}, expected 2")
    if length != size:
        raise IntegrityError(f"a cut or padded GLB: its header says {length} bytes, the file has {size}")
    if chunk_type != _GLB_JSON_CHUNK:
        raise IntegrityError("a damaged GLB: its first chunk is not JSON")


def check_gzip(path: Path) -> None:
    """A complete gzip stream: decompressing to the end verifies its CRC and length trailer."""
    try:
        with gzip.open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as error:
        raise IntegrityError(f"not a complete gzip file ({error})") from None


def check_for(relpath: str):
    """The check that fits a Hub path, by its suffix."""
    if relpath.endswith(".glb"):
        return check_glb
    if relpath.endswith(".gz"):
        return check_gzip
    return lambda path: None
