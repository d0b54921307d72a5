"""Where a member of a released zip part belongs: which instance (`<category>/<instance>`) and
which path inside it, decided on its name alone before anything is read.

The name follows the one path rule of `mvcap_build.dataset.safe_paths` with the instance folder
as the boundary, as the NeRF reader has its object folder: a name may not be absolute, and the
part after `<category>/<instance>/` is normalised and may not leave that folder. So a crafted
`../` member is ledgered, never unpacked, and an `images/../images/001.jpg` is read.
"""

from __future__ import annotations

from mvcap_build.dataset.safe_paths import inside_name

__all__ = ["zip_member_place"]


def zip_member_place(name: str) -> tuple[str, str | None]:
    """(instance key "<category>/<instance>", path inside the instance) of a zip member.

    A name the path rule refuses gets None (unsafe) under its instance's key, or under its first
    two components as written when it names no instance, so the entry is ledgered, not read.
    Safe members outside any instance (a README at the top) get an empty key.
    """
    parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]
    if inside_name(name) is None or ".." in parts[:2]:
        return "/".join(name.replace("\\", "/").split("/")[:2]).strip() or "unnamed", None
    if len(parts) < 3:
        return "", ""
    return f"{parts[0]}/{parts[1]}", inside_name("/".join(parts[2:]))
