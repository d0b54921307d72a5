"""Where each stage reads and writes inside a dataset root. README.md documents the layout."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mvcap_build.dataset.keys import key_relpath
from mvcap_build.errors import RootError

VIEW_MANIFEST = "views.json"
# The folders stages write in (README.md, "Dataset root"): each must be a folder where it exists.
# The stages whose unit is one object, in pipeline order: each has a failure ledger and its own
# manifests, and `status`, the card and the stale check count them. The one list of their names.
OBJECT_STAGES = ("render", "extract", "caption")
ROOT_FOLDERS = (
    "objects",
    "views",
    "captions",
    "failures",
    "logs",
    "runs",
    "export",
    "cache",
    "train",
    "preview",
    "launch",
)


@dataclass(frozen=True)
class DatasetRoot:
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser().resolve())

    # checks ----------------------------------------------------------------------------------
    def ensure_writable(self) -> DatasetRoot:
        """Create the root if needed; refuse a file, or a folder this process cannot write."""
        if self.path.exists() and not self.path.is_dir():
            raise RootError(f"dataset root {self.path} is a file, not a folder: choose another path")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RootError(f"cannot create dataset root {self.path}: {error.strerror or error}") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise RootError(f"dataset root {self.path} is not writable by this user")
        try:  # os.access says yes to root on read-only mounts and pseudo file systems (/sys, /proc)
            fd, probe = tempfile.mkstemp(prefix=".tmp-probe.", dir=self.path)
            os.close(fd)
            os.unlink(probe)
        except OSError as error:
            raise RootError(f"cannot write in dataset root {self.path}: {error.strerror or error}") from None
        for name in ROOT_FOLDERS:
            if (self.path / name).exists() and not (self.path / name).is_dir():
                raise RootError(
                    f"{self.path / name} is a file, but the dataset layout needs a folder there: "
                    "move it away, or choose another root"
                )
        return self

    def ensure_exists(self) -> DatasetRoot:
        """For commands that only read (status, export's inputs): the root must be a folder."""
        if not self.path.exists():
            raise RootError(f"no dataset root at {self.path}")
        if not self.path.is_dir():
            raise RootError(f"{self.path} is a file, not a dataset root folder")
        return self

    # objects table ---------------------------------------------------------------------------
    def objects_table(self, source: str) -> Path:
        return self.path / "objects" / f"{source}.jsonl"

    def objects_tables(self) -> list[Path]:
        return sorted((self.path / "objects").glob("*.jsonl"))

    # views (render or extract) ---------------------------------------------------------------
    def view_dir(self, key: str) -> Path:
        return self.path / "views" / key_relpath(key)

    def view_manifest(self, key: str) -> Path:
        return self.view_dir(key) / VIEW_MANIFEST

    def view_manifests(self) -> Iterator[Path]:
        yield from sorted((self.path / "views").glob(f"*/*/{VIEW_MANIFEST}"))

    # caption ---------------------------------------------------------------------------------
    def caption_manifest(self, key: str) -> Path:
        return self.path / "captions" / f"{key_relpath(key)}.json"

    def caption_manifests(self) -> Iterator[Path]:
        yield from sorted((self.path / "captions").glob("*/*.json"))

    # failures, logs, run configs -------------------------------------------------------------
    def failure(self, stage: str, key: str) -> Path:
        return self.path / "failures" / stage / f"{key_relpath(key)}.json"

    def failures(self, stage: str) -> Iterator[Path]:
        yield from sorted((self.path / "failures" / stage).glob("*/*.json"))

    def logs(self, stage: str, shard: int = 0, num_shards: int = 1) -> Path:
        """One folder per shard, so concurrent shards never write to the same log file."""
        return self.path / "logs" / stage / f"shard-{shard:05d}-of-{num_shards:05d}"

    def run_config(self, stage: str, shard: int = 0, num_shards: int = 1) -> Path:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return self.path / "runs" / f"{stage}-{stamp}-shard-{shard:05d}-of-{num_shards:05d}.yaml"

    def run_configs(self, stage: str) -> list[Path]:
        """Saved run configs of one stage, oldest first (the names sort by time)."""
        return sorted((self.path / "runs").glob(f"{stage}-*.yaml"))

    # export ----------------------------------------------------------------------------------
    @property
    def export_dir(self) -> Path:
        return self.path / "export"

    def relative(self, path: Path) -> str:
        """A path inside the root as a POSIX string relative to it (what metadata.json stores)."""
        return path.resolve().relative_to(self.path).as_posix()
