"""The failure ledger of one stage: one small JSON file per failed unit.

A file per unit (rather than one appended log) keeps entries atomic and lets concurrent shards
write to the same root. A later success of the same unit removes its entry. Only the stage base
(`mvcap_build.pipeline.stage`) records and clears entries; everything else reads them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from mvcap_build.dataset.atomic import atomic_write_json
from mvcap_build.dataset.fingerprint import Fingerprint
from mvcap_build.dataset.layout import DatasetRoot
from mvcap_build.dataset.records import FailureRecord
from mvcap_build.errors import ManifestError


class FailureLedger:
    def __init__(self, root: DatasetRoot, stage: str) -> None:
        self.root = root
        self.stage = stage

    def record(self, key: str, reason: str, detail: str, fingerprint: Fingerprint | None = None) -> FailureRecord:
        entry = FailureRecord(
            key=key,
            stage=self.stage,
            reason=reason,
            detail=detail.strip()[-4000:],
            time=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            fingerprint=fingerprint,
        )
        atomic_write_json(self.root.failure(self.stage, key), entry.model_dump())
        return entry

    def clear(self, key: str) -> None:
        self.root.failure(self.stage, key).unlink(missing_ok=True)

    def has(self, key: str) -> bool:
        return self.root.failure(self.stage, key).exists()

    def get(self, key: str) -> FailureRecord | None:
        path = self.root.failure(self.stage, key)
        return _read(path) if path.is_file() else None

    def __iter__(self) -> Iterator[FailureRecord]:
        for path in self.root.failures(self.stage):
            yield _read(path)


def _read(path) -> FailureRecord:
    try:
        return FailureRecord.model_validate_json(path.read_bytes())
    except ValueError as error:
        raise ManifestError(f"{path}: not a valid failure entry: {error}") from error
