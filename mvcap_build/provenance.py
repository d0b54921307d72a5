"""What made a run: mvcap's version and git commit, Python, the host, and the versions of the
libraries whose behaviour shapes the data. Written into every `ROOT/runs/*.yaml`, so a dataset
can be traced to the code that built it months later."""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# Read from the installed distributions' metadata: nothing here is imported (no torch, no bpy).
PACKAGES = (
    "bpy",
    "torch",
    "transformers",
    "vllm",
    "peft",
    "accelerate",
    "datasets",
    "pyarrow",
    "huggingface_hub",
    "pillow",
    "numpy",
    "pydantic",
    "submitit",
    "ray",
)


@functools.lru_cache(maxsize=1)
def provenance() -> dict[str, Any]:
    return {
        "mvcap_version": _version("mvcap-build"),
        "git": _git_state(Path(__file__).resolve().parent.parent),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "packages": {name: version for name in PACKAGES if (version := _version(name)) is not None},
    }


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _git_state(source: Path) -> dict[str, Any] | None:
    """The commit of the checkout mvcap runs from, and whether it had uncommitted changes;
    None for an installed wheel (no checkout) or where git is missing."""
    if not (source / ".git").exists():
        return None

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(source), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return None
