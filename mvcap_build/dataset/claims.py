"""Claims: one live process at a time works on a unit, so two runs of one shard cannot collide.

A claim is an exclusive `flock` on a small file beside the unit (`.tmp-<name>.claim`). The kernel
drops it when its process dies, however it dies, so a killed run never blocks the next one and a
claim that can be taken proves that nobody is building that unit now. Two runs of the same shard
(a requeued Slurm task beside its first attempt, a user starting a command twice) therefore split
the work instead of deleting each other's staging folders.

On a shared file system the lock must reach every node: NFSv4 and most parallel file systems
(Lustre mounted with `flock`, GPFS, BeeGFS) do.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from mvcap_build.dataset.atomic import TMP_PREFIX

CLAIM_SUFFIX = ".claim"


def claim_path(final: Path) -> Path:
    return final.parent / f"{TMP_PREFIX}{final.name}{CLAIM_SUFFIX}"


class Claim:
    """A held claim on `final`; `release()` (or leaving the `with` block) gives it back."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still locked: no one can hold the old inode after us
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def try_claim(final: Path) -> Claim | None:
    """Claim `final` for this process, or None when another live process holds it."""
    path = claim_path(final)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return Claim(path, fd)
        os.close(fd)  # the holder released (and removed) the file between our open and our lock: again
