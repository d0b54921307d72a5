"""Where each stage reads and writes inside a dataset root. README.md documents the layout."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mvcap_build.dataset.keys import key_relpath

VIEW_MANIFEST = "views.json"


@dataclass(frozen=True)
class DatasetRoot:
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser().resolve())

    # objects table ---------------------------------------------------------------------------
    def objects_table(self, source: str) -> Path:
        return self.path / "objects" / f"{source}.jsonl"

    def objects_tables(self) -> list[Path]:
        return sorted((self.path / "objects").glob("*.jsonl"))

    # render ----------------------------------------------------------------------------------
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

    def logs(self, stage: str) -> Path:
        return self.path / "logs" / stage

    def run_config(self, stage: str) -> Path:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return self.path / "runs" / f"{stage}-{stamp}.yaml"

    # export ----------------------------------------------------------------------------------
    @property
    def export_dir(self) -> Path:
        return self.path / "export"

    def relative(self, path: Path) -> str:
        """A path inside the root as a POSIX string relative to it (what metadata.json stores)."""
        return path.resolve().relative_to(self.path).as_posix()
