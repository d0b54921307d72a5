"""Whether a path written inside the data (a zip member's name, an image name in a COLMAP model)
stays inside the folder it is relative to, decided on the text alone before anything is opened.

Zip parts and models come from elsewhere; a crafted `../` or absolute name must never make the
reader touch a file outside the dataset root, so such names are refused, not normalised.
"""

from __future__ import annotations

import re

__all__ = ["escapes_root", "path_parts", "safe_relative", "zip_member_place"]


def escapes_root(name: str) -> bool:
    """Whether a stored path could point outside the folder it is relative to: absolute, with a
    drive, or with any `..` (refused even where it would stay inside: no real entry needs it)."""
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", name)) or ".." in parts or "\x00" in name


def path_parts(name: str) -> list[str]:
    """The components of a stored path, either slash, empty and `.` components dropped."""
    return [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]


def safe_relative(name: str) -> str | None:
    """The path normalised to forward slashes, or None if it escapes the root."""
    return None if escapes_root(name) else "/".join(path_parts(name))


def zip_member_place(name: str) -> tuple[str, str | None]:
    """(instance key "<category>/<instance>", path inside the instance) of a zip member.

    Decided on the text alone: absolute names, drive letters and any `..` make the path None
    (unsafe) under a key made of its first two components, so the entry is ledgered, not read.
    Safe members outside any instance (a README at the top) get an empty key.
    """
    if escapes_root(name):
        return "/".join(name.replace("\\", "/").split("/")[:2]).strip() or "unnamed", None
    parts = path_parts(name)
    if len(parts) < 3:
        return "", ""
    return f"{parts[0]}/{parts[1]}", "/".join(parts[2:])
