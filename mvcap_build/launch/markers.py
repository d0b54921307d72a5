"""Shard completion markers: the one record of which shards of a stage have finished.

A shard that ends cleanly writes `done` with its summary; a shard that stops on an error writes
`failed` with the message (exit 2: the user must fix something; it is reported, never resubmitted
by the same launch). A shard killed from outside writes nothing, and is simply not done. Both are
written atomically, after the shard's last unit is committed, so a marker never claims work that
is not on disk.

Markers live per stage and per *generation*: the digest of the stage's settings, its shard count
and the generation of the stage before it. Changed settings (or a re-rendered root under the same
caption settings) are a new generation, whose shards start with no markers.

    ROOT/launch/markers/<stage>/<generation>/shard-IIIII-of-NNNNN.json
    ROOT/launch/markers/<stage>/<generation>/shard-IIIII-of-NNNNN.failed.json
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from mvcap_build.dataset.atomic import atomic_write_text
from mvcap_build.dataset.layout import DatasetRoot


def generation_of(stage: str, config: BaseModel, num_shards: int, upstream: str | None) -> str:
    """16 hex digits naming this stage's settings, its sharding and what it builds on."""
    document = {
        "stage": stage,
        "config": config.model_dump(mode="json"),
        "num_shards": num_shards,
        "upstream": upstream,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


class Marker(BaseModel):
    stage: str
    generation: str
    shard: int
    num_shards: int
    status: Literal["done", "failed"]
    exit_code: int = 0
    line: str = ""  # the stage's summary line (done) or the error message (failed)
    summary: dict[str, Any] = {}
    host: str = ""
    job: str = ""  # the scheduler's id of the job that ran it (Slurm job, Ray task), if any
    started: str = ""
    ended: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class StageMarkers:
    """The markers of one stage generation."""

    root: DatasetRoot
    stage: str
    generation: str
    num_shards: int

    @property
    def folder(self) -> Path:
        return self.root.path / "launch" / "markers" / self.stage / self.generation

    def path(self, shard: int, failed: bool = False) -> Path:
        name = f"shard-{shard:05d}-of-{self.num_shards:05d}"
        return self.folder / (name + (".failed.json" if failed else ".json"))

    def write(self, marker: Marker) -> Path:
        """Commit a marker; a `done` one replaces an older `failed` one of the same shard."""
        path = self.path(marker.shard, failed=marker.status == "failed")
        atomic_write_text(path, marker.model_dump_json(indent=1))
        if marker.status == "done":
            self.path(marker.shard, failed=True).unlink(missing_ok=True)
        return path

    def read(self, shard: int) -> Marker | None:
        """The shard's marker: done wins over failed; None when it has none (or an unreadable one)."""
        for failed in (False, True):
            path = self.path(shard, failed)
            if path.is_file():
                try:
                    return Marker.model_validate_json(path.read_bytes())
                except ValueError:
                    continue  # a marker is committed atomically; an unreadable one was edited by hand
        return None

    def has_marker(self, shard: int) -> bool:
        """Whether the shard has ended with a marker, done or failed: a stat, for polling."""
        return self.path(shard).is_file() or self.path(shard, failed=True).is_file()

    def clear_failed(self, shard: int) -> None:
        """Before a shard is resubmitted: its old failure is history, not its state."""
        self.path(shard, failed=True).unlink(missing_ok=True)

    def all(self) -> dict[int, Marker]:
        return {shard: m for shard in range(self.num_shards) if (m := self.read(shard)) is not None}

    def done(self) -> set[int]:
        return {shard for shard, m in self.all().items() if m.status == "done"}
