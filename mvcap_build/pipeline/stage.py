"""The stage contract: `run(root, shard, num_shards) -> Summary`, and the shared flow of stages
whose unit of work is one object (render, extract, caption).

A stage owns its typed config, its ledger and its saved run config. `ObjectStage` does the
bookkeeping that every such stage shares, so a stage itself only says which units exist, what
fingerprint each would get now, and how to do a batch of them:

  plan     every unit of this shard (or the subset `--keys` / `--limit` asks for): committed
           with the same fingerprint (skip), committed with another (stale), in the ledger (skip
           unless retried), or to do
  check    stale units stop the run before any work, naming the fields that differ, unless
           `--redo stale` asked to redo them
  record   the resolved config goes to runs/ (only for a run that starts)
  work     the stage reports one Outcome per unit; the ledger and the summary are kept here;
           a stale unit whose redo fails is removed, so no unit passes for what it is not
"""

from __future__ import annotations

import json
import shutil
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Protocol

import yaml
from pydantic import BaseModel

from mvcap_build.dataset.atomic import atomic_write_text
from mvcap_build.dataset.claims import Claim, try_claim
from mvcap_build.dataset.fingerprint import Fingerprint, StaleReport
from mvcap_build.dataset.keys import in_shard
from mvcap_build.dataset.layout import DatasetRoot
from mvcap_build.dataset.ledger import FailureLedger
from mvcap_build.errors import ConfigError, StaleUnitsError
from mvcap_build.progress import progress
from mvcap_build.provenance import provenance


class Redo(str, Enum):
    none = "none"  # committed units are kept; stale ones stop the run
    stale = "stale"  # units made with other settings are redone (atomically, as always)


@dataclass(frozen=True)
class RunOptions:
    """How to run, as opposed to what to make: not part of any fingerprint."""

    redo: Redo = Redo.none
    retry_failed: bool = False  # redo units that are in the failure ledger
    progress: bool = True  # a bar on a terminal, periodic lines in logs; False: summary only
    limit: int | None = None  # try only the first N units of the shard, in key order
    keys: tuple[str, ...] | None = None  # try only these units (each must be one of the shard's)


@dataclass
class Summary:
    """What one run of one stage did, in this shard."""

    stage: str
    verb: str = "done"  # "rendered", "captioned", ...
    noun: str = "objects"
    shard: int = 0
    num_shards: int = 1
    units: int = 0  # units in this shard
    done: int = 0  # committed by this run
    redone: int = 0  # of `done`: stale units replaced
    already_done: int = 0  # committed before, same settings
    skipped_failed: int = 0  # in the ledger, not retried
    elsewhere: int = 0  # held or committed by another run of this shard meanwhile: left to it
    failed: Counter = field(default_factory=Counter)  # reason -> units failed in this run
    items: int = 0  # views in the units committed now
    headline: str | None = None  # replaces the unit counts for one-unit stages (export, train)
    notes: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return self.done + sum(self.failed.values())

    @property
    def all_failed(self) -> bool:
        """Work was there and none of it succeeded: the command exits non-zero."""
        return self.attempted > 0 and self.done == 0

    def line(self) -> str:
        failed = sum(self.failed.values())
        reasons = f" ({', '.join(f'{r}: {n}' for r, n in self.failed.most_common())})" if failed else ""
        redone = f" ({self.redone} stale redone)" if self.redone else ""
        where = f" in shard {self.shard}/{self.num_shards}" if self.num_shards > 1 else ""
        elsewhere = f", {self.elsewhere} left to another run of this shard" if self.elsewhere else ""
        text = (
            f"{self.stage}: {self.headline}"
            if self.headline
            else (
                f"{self.stage}: {self.done} {self.verb}{redone}, {self.already_done} already done, "
                f"{failed} failed{reasons}, {self.skipped_failed} skipped (in ledger){elsewhere} "
                f"of {self.units} {self.noun}{where}"
            )
        )
        return "\n".join([text, *(f"{self.stage}: {note}" for note in self.notes)])


class Stage(Protocol):
    """What `mvcap build`, the stage commands and the runners (Slurm arrays, Ray) rely on."""

    name: ClassVar[str]

    def run(self, root: DatasetRoot, shard: int = 0, num_shards: int = 1) -> Summary: ...


@dataclass
class Unit:
    """One unit of work: an object key, the fingerprint it would get now, and what the stage
    needs to do it (an ObjectRecord, a views manifest, ...)."""

    key: str
    fingerprint: Fingerprint
    payload: Any = None


@dataclass
class Outcome:
    """The end of one unit in this run: committed (reason None) or failed with a reason."""

    key: str
    reason: str | None = None
    detail: str = ""
    items: int = 0
    elsewhere: bool = False  # another live run holds the unit (or committed it since the plan)


@dataclass
class Plan:
    todo: list[Unit]
    summary: Summary
    stale: StaleReport
    corrupt: list[str] = field(default_factory=list)  # committed, but the manifest cannot be read: redone


def record_run(
    root: DatasetRoot, stage: str, config: BaseModel, options: RunOptions, shard: int, num_shards: int
) -> Path:
    """Save the resolved config of a run that starts, beside the data it makes."""
    document = {
        "stage": stage,
        "shard": shard,
        "num_shards": num_shards,
        "options": {
            "redo": options.redo.value,
            "retry_failed": options.retry_failed,
            **({"limit": options.limit} if options.limit is not None else {}),
            **({"keys": list(options.keys)} if options.keys is not None else {}),
        },
        "config": config.model_dump(mode="json"),
        "provenance": provenance(),
    }
    path = root.run_config(stage, shard, num_shards)
    atomic_write_text(path, yaml.safe_dump(document, sort_keys=False))
    return path


def read_fingerprint(manifest: Path) -> Fingerprint | None:
    """The fingerprint of a committed manifest without validating the rest (fast on 100K units)."""
    data = json.loads(manifest.read_bytes()).get("fingerprint")
    return Fingerprint.model_validate(data) if data else None


class ObjectStage(ABC):
    """A stage whose unit is one object, committed atomically and keyed by the object key."""

    name: ClassVar[str]
    verb: ClassVar[str]
    nothing_to_do: ClassVar[str] = "no units"  # said when a run finds no unit at all

    def __init__(self, config: BaseModel, options: RunOptions | None = None) -> None:
        self.config = config
        self.options = options or RunOptions()

    # what a stage provides -------------------------------------------------------------------
    @abstractmethod
    def units(self, root: DatasetRoot, shard: int, num_shards: int) -> Iterable[Unit]:
        """Every unit this stage could do in this shard, each with the fingerprint it gets now."""

    @abstractmethod
    def committed_manifest(self, root: DatasetRoot, key: str) -> Path:
        """The file whose presence means "this unit is committed"; it holds a `fingerprint`."""

    @abstractmethod
    def work(
        self, root: DatasetRoot, todo: list[Unit], shard: int, num_shards: int, report: Callable[[Outcome], None]
    ) -> None:
        """Do the units, committing each atomically, and call `report` once per unit."""

    def prepare(self, root: DatasetRoot) -> None:
        """Before any work, after the checks (e.g. write the objects table)."""

    def discard(self, root: DatasetRoot, key: str) -> None:
        """Remove a committed unit (a stale one whose redo failed): made with settings the run
        replaced, it must not pass for current. Stages whose unit is a folder override this."""
        self.committed_manifest(root, key).unlink(missing_ok=True)

    def run_notes(self) -> list[str]:
        """Lines for the summary about this run's work as a whole (said after `work`)."""
        return []

    def unit_path(self, root: DatasetRoot, key: str) -> Path:
        """What a unit commits to (a file or a folder): its claim and staging sit beside it."""
        return self.committed_manifest(root, key)

    def claim(self, root: DatasetRoot, unit: Unit) -> Claim | None:
        """Hold `unit` while this run builds it (`work` calls this before touching a unit).

        None when another live run of this shard holds it, or committed it with this run's
        settings since the plan: the unit is then left to that run (`Outcome(elsewhere=True)`)."""
        claim = try_claim(self.unit_path(root, unit.key))
        if claim is None:
            return None
        try:
            old = read_fingerprint(self.committed_manifest(root, unit.key))
        except (OSError, ValueError, AttributeError, TypeError):
            old = None
        if old is not None and old.digest == unit.fingerprint.digest:
            claim.release()
            return None
        return claim

    # the shared flow -------------------------------------------------------------------------
    def plan(self, root: DatasetRoot, shard: int = 0, num_shards: int = 1) -> Plan:
        ledger = FailureLedger(root, self.name)
        summary = Summary(self.name, self.verb, shard=shard, num_shards=num_shards)
        stale, todo, corrupt = StaleReport(), [], []
        for unit in self.select(
            [u for u in self.units(root, shard, num_shards) if in_shard(u.key, shard, num_shards)], summary
        ):
            summary.units += 1
            manifest = self.committed_manifest(root, unit.key)
            if manifest.is_file():
                try:
                    old = read_fingerprint(manifest)
                except (ValueError, AttributeError, TypeError):  # truncated or edited by hand: not a committed unit
                    corrupt.append(unit.key)
                    todo.append(unit)
                    continue
                if old is not None and old.digest == unit.fingerprint.digest:
                    summary.already_done += 1
                    continue
                stale.add(unit.key, old, unit.fingerprint)
                todo.append(unit)
            elif (entry := ledger.get(unit.key)) is not None:
                if entry.fingerprint is not None and entry.fingerprint.digest != unit.fingerprint.digest:
                    stale.add(unit.key, entry.fingerprint, unit.fingerprint)  # failed with other settings
                    todo.append(unit)
                elif self.options.retry_failed:
                    todo.append(unit)
                else:
                    summary.skipped_failed += 1
            else:
                todo.append(unit)
        if corrupt:
            summary.notes.append(
                f"{len(corrupt)} committed manifest(s) could not be read "
                f"(e.g. {self.committed_manifest(root, corrupt[0])}): "
                "those units are redone"
            )
        return Plan(todo, summary, stale, corrupt)

    def select(self, units: list[Unit], summary: Summary) -> list[Unit]:
        """The units this run tries: all of the shard's, or the subset `--keys` / `--limit` asks
        for (the first N in key order, so reruns with the same N pick the same units)."""
        keys, limit = self.options.keys, self.options.limit
        if keys is None and limit is None:
            return units
        everything, where = len(units), " of this shard" if summary.num_shards > 1 else ""
        if keys is not None:
            known = {unit.key for unit in units}
            unknown = [key for key in dict.fromkeys(keys) if key not in known]
            if unknown:
                more = f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else ""
                example = f"; keys look like {min(known)}" if known else ""
                raise ConfigError(
                    f"{self.name}: unknown key(s) in --keys: {', '.join(unknown[:5])}{more} "
                    f"(not among the {everything} {summary.noun}{where}{example})"
                )
            wanted = set(keys)
            units = [unit for unit in units if unit.key in wanted]
        if limit is not None:
            units = sorted(units, key=lambda unit: unit.key)[:limit]
        asked = ", ".join(
            flag for flag, given in (("--keys", keys is not None), (f"--limit {limit}", limit is not None)) if given
        )
        summary.notes.append(f"a subset ({asked}): {len(units)} of the {everything} {summary.noun}{where}")
        return units

    def run(self, root: DatasetRoot, shard: int = 0, num_shards: int = 1) -> Summary:
        plan = self.plan(root, shard, num_shards)
        if plan.stale and self.options.redo != Redo.stale:
            raise StaleUnitsError(self._stale_message(plan))
        stale_keys = set(plan.stale.units) | set(plan.corrupt)  # a failed redo must not leave them behind
        self.prepare(root)
        record_run(root, self.name, self.config, self.options, shard, num_shards)
        ledger, summary = FailureLedger(root, self.name), plan.summary
        fingerprints = {unit.key: unit.fingerprint for unit in plan.todo}
        with progress(f"{self.name}", total=len(plan.todo), enabled=self.options.progress) as bar:

            def report(outcome: Outcome) -> None:
                if outcome.elsewhere:
                    summary.elsewhere += 1
                elif outcome.reason is None:
                    ledger.clear(outcome.key)
                    summary.done += 1
                    summary.redone += outcome.key in stale_keys
                    summary.items += outcome.items
                else:
                    if outcome.key in stale_keys:
                        self.discard(root, outcome.key)
                    ledger.record(outcome.key, outcome.reason, outcome.detail, fingerprints.get(outcome.key))
                    summary.failed[outcome.reason] += 1
                bar.advance(failed=outcome.reason is not None)

            if plan.todo:
                self.work(root, plan.todo, shard, num_shards, report)
        summary.notes.extend(self.run_notes())
        if summary.units == 0:
            summary.notes.append(self.nothing_to_do)
        return summary

    def _stale_message(self, plan: Plan) -> str:
        where = f" in shard {plan.summary.shard}/{plan.summary.num_shards}" if plan.summary.num_shards > 1 else ""
        lines = [
            f"{self.name}: {len(plan.stale)} of {plan.summary.units} {plan.summary.noun}{where} were made "
            "with other settings than this run's. Fields that differ (old -> new):",
            *plan.stale.describe(),
            "Nothing was changed. Rerun with `--redo stale` to redo exactly those units, "
            "or use the old settings, or another dataset root.",
        ]
        return "\n".join(lines)


class ViewsStage(ObjectStage):
    """A stage that commits an object as a folder of views (render, extract): `views.json` in
    the folder is the commit marker, and a stale object whose redo failed loses its folder."""

    def committed_manifest(self, root: DatasetRoot, key: str) -> Path:
        return root.view_manifest(key)

    def unit_path(self, root: DatasetRoot, key: str) -> Path:
        return root.view_dir(key)

    def discard(self, root: DatasetRoot, key: str) -> None:
        """The manifest goes first (the object stops counting as done), then the folder."""
        folder = root.view_dir(key)
        (folder / "views.json").unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
