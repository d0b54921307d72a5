"""Atomic commits: a unit of work is either fully on disk under its final name, or not at all.

Everything is written under a temporary name in the destination folder and moved into place with
`os.replace` (files) or `os.rename` (folders), which POSIX makes atomic within one file system.
A process killed at any moment leaves at most a `.tmp-*` leftover, never a half-written unit.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mvcap_build.errors import DiskFullError

TMP_PREFIX = ".tmp-"
_TEMP_SUFFIX = re.compile(r"[a-z0-9_]{8}")  # what tempfile.mkdtemp/mkstemp append to the prefix


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, racing other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


# mkstemp/mkdtemp create 0600/0700 entries: without this a dataset root written by one user would
# be unreadable to the rest of a lab sharing it. Committed units get what open()/mkdir() would give.
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False, ensure_ascii=False) + "\n")


def make_staging_dir(final: Path) -> Path:
    """A fresh, empty folder beside `final` to build a unit in before `commit_dir`."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final.name}.", dir=final.parent))
    os.chmod(staging, DIR_MODE)
    return staging


def commit_dir(staging: Path, final: Path) -> None:
    """Move a fully built folder into place. A stale, uncommitted `final` is replaced."""
    if final.exists():
        shutil.rmtree(final)
    os.rename(staging, final)


def remove_stale_staging(final: Path) -> None:
    """Delete leftovers of killed attempts at `final` (only this unit's, so shards can share a root).

    Call it only while holding the unit's claim (`claims.py`): then no live process is building
    `final`, and every staging folder beside it belongs to a dead one."""
    parent = final.parent
    if not parent.is_dir():
        return
    prefix = f"{TMP_PREFIX}{final.name}."
    for leftover in parent.glob(f"{glob.escape(prefix)}*"):
        if not _TEMP_SUFFIX.fullmatch(leftover.name[len(prefix) :]):
            continue  # our claim, or another unit's staging (key "a.b" beside key "a")
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
NEARLY_FULL_BYTES = 8 * 2**20  # below this, a file that came out truncated is blamed on the disk


def disk_is_full(path: Path, error: BaseException | None = None) -> bool:
    """Whether `error` (or a truncated file at `path`) comes from a full disk or quota.

    Blender and image libraries often report a full disk as a truncated file with no errno,
    so the free space left is asked too."""
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        return True
    try:
        return shutil.disk_usage(path if path.exists() else path.parent).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def disk_full_error(path: Path) -> DiskFullError:

    try:
        free = f"{shutil.disk_usage(path if path.exists() else path.parent).free / 2**20:.0f} MiB free"
    except OSError:
        free = "free space unknown"
    return DiskFullError(
        f"the disk holding {path} is full ({free}): committed work is kept; "
        "free some space (or use a root on a bigger disk) and rerun the same command to resume"
    )
