"""The one rule for names written inside input data (a transforms file's `file_path`, an image
name in a COLMAP model, a zip member, a file in a categories CSV): a name is relative to a folder
(the object or instance folder, the mesh folder) and must not lead out of it.

Inputs come from elsewhere, and a crafted `../../etc/passwd` must never make a reader touch a
file outside the folder it reads. Real exports do write `./train/r_0` or `images/../images/001`,
so a name is normalised and refused only if it climbs above the folder at any point (more `..`
than folders so far), is absolute (`/x`, `\\x`, `C:x`), holds a NUL or names no file at all.
The text is checked before anything is opened (`inside_name`), the resolved path, symlinks
followed, before a file is read (`resolves_inside`). Capture readers ledger a refusal as
`unsafe_path` (`UNSAFE_PATH`).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["UNSAFE_PATH", "inside_name", "resolves_inside"]

UNSAFE_PATH = "unsafe_path"  # the ledger reason of an instance refused by this rule


def inside_name(name: str) -> str | None:
    """`name` normalised to a forward-slash path inside its folder (`./a/../b\\c` -> `b/c`), or
    None if it is absolute, has a drive or a NUL, leaves the folder or names the folder itself.
    Either slash separates: datasets written on Windows use backslashes."""
    text = name.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text) or "\x00" in text:
        return None
    parts: list[str] = []
    for part in text.split("/"):
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts) or None


def resolves_inside(folder: Path, path: Path) -> bool:
    """Whether `path`, symlinks followed, lies inside `folder` (resolved too, so a folder that is
    itself a link is fine): a link in the data that leads elsewhere is refused like a `../` name."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())
