"""What a training run is made from, and the check that a resume continues that same run.

A run's fingerprint (the machinery of mvcap_build.dataset.fingerprint) has these fields:
  settings.*           every TrainOVTConfig field except FREE_ON_RESUME and `preset` (which only
                       fills in the others); clip_model as a resolved path when it is a local folder
  export.*             a digest of the files trained on (each shard's name, size and Parquet footer,
                       or MVCap's metadata.json), and their object and view counts
  training_keys        a digest of the sorted object keys trained on; the keys themselves go into
                       every checkpoint (ovt/checkpoint.py's KEYS_FILE), for `mvcap eval`'s leakage check
  base_model.revision  the base CLIP's commit in the Hub cache, or "local:" + a hash of a local
                       folder's config.json and its weight files' names and sizes (tiny-random:
                       OUTPUT/base-model, built once from the export's captions and the seed)
  world_size           processes: rank r takes global batch i * world_size + r, so it shapes the data
Every checkpoint stores the fingerprint. Resuming with another one stops before any work, naming
the fields, unless asked to start over (`--redo stale`: the old run is moved to OUTPUT/previous/).

FREE_ON_RESUME settings may change when resuming; `segments` (in config.json and each checkpoint)
records from which step each value was in force, so the record says how every step was trained.

Pure Python: nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mvcap_build.dataset.fingerprint import Fingerprint, changed_fields
from mvcap_build.errors import StaleUnitsError
from mvcap_build.ovt.checkpoint import KEYS_FILE
from mvcap_build.train.config import TrainOVTConfig

# Settings a resume may change. max_steps: raising it is how a run trains further (with a decaying
# schedule, the steps already run keep the learning rates of the max_steps they ran under: see
# `segments`). save_every, log_every, num_workers: when checkpoints and log lines are written and
# how many processes decode images; batches are a pure function of (seed, step), so none of them
# changes a weight.
FREE_ON_RESUME = ("max_steps", "save_every", "log_every", "num_workers")
PREVIOUS_DIR = "previous"  # OUTPUT/previous/<time>/: runs replaced by `--redo stale`
# What one run writes into its folder; moved aside together by `--redo stale`. The base model goes
# first and the checkpoints (the commit) next, so a kill midway leaves no checkpoint beside files
# of another run that a resume would reuse.
RUN_FILES = ("base-model", "checkpoints", "eval", "train_log.jsonl", "config.json")


class StaleTrainingRun(StaleUnitsError):
    """The output folder holds a run made with other settings, data or base model."""


@dataclass(frozen=True)
class RunInputs:
    """What a run trains on, known before any model loads."""

    export_dir: Path
    digest: str  # of the files read (see `export_digest`)
    objects: int
    views: int
    key_column: str  # "key"; "obj_id" for MVCap's released layout, which has no keys
    keys: tuple[str, ...]  # sorted, one per object

    @classmethod
    def of(cls, data, export_dir: str | Path, images: str = "auto") -> RunInputs:
        """`data`: the ExportData the run trains on, opened from `export_dir` with `images`."""
        column = "key" if "key" in data.dataset.column_names else "obj_id"
        keys = tuple(sorted(str(k) for k in data.dataset.data.column(column).unique().to_pylist()))
        return cls(
            Path(export_dir),
            export_digest(Path(export_dir), images),
            data.num_objects,
            data.dataset.num_rows,
            column,
            keys,
        )

    @property
    def keys_digest(self) -> str:
        return hashlib.sha256("\n".join(self.keys).encode("utf-8")).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """As checkpoints record it."""
        return {
            "export": {
                "dir": str(self.export_dir.resolve()),
                "digest": self.digest,
                "objects": self.objects,
                "views": self.views,
            },
            "training_keys": {
                "file": KEYS_FILE,
                "column": self.key_column,
                "count": len(self.keys),
                "digest": self.keys_digest,
            },
        }


def export_digest(export_dir: Path, images: str = "auto") -> str:
    """Changes when the files training reads change; reads only their Parquet footers (an unchanged
    export is byte-identical, so its footers are too). MVCap's layout: its metadata.json."""
    from mvcap_build.train.data import MVCAP_METADATA, training_shards

    digest = hashlib.sha256()
    shards = training_shards(export_dir, images)
    for shard in shards:
        digest.update(json.dumps([shard.relative_to(export_dir).as_posix(), shard.stat().st_size]).encode())
        digest.update(_parquet_footer(shard))
    if not shards:
        digest.update((export_dir / MVCAP_METADATA).read_bytes())
    return digest.hexdigest()[:16]


def _parquet_footer(path: Path) -> bytes:
    """A Parquet file's footer (schema, row groups, their sizes and statistics)."""
    with open(path, "rb") as f:
        f.seek(-8, os.SEEK_END)
        length = int.from_bytes(f.read(4), "little")
        f.seek(-(8 + length), os.SEEK_END)
        return f.read(length)


def base_model_revision(base_model: str) -> str:
    """Which weights `base_model` is, from local files only: call it once the model has loaded
    (a Hub model is then in the cache). "unresolved" when the cache does not say."""
    from mvcap_build.hub_models import local_revision

    return local_revision(base_model)


def run_fingerprint(
    config: TrainOVTConfig, inputs: RunInputs, world_size: int, base_revision: str | None = None
) -> Fingerprint:
    """The run's fingerprint; without `base_revision` (before the model loads) it lacks
    base_model.revision, and `stale_fields` compares the rest."""
    # `preset` only fills in other fields, which are compared themselves.
    settings = config.model_dump(mode="json", exclude={*FREE_ON_RESUME, "preset"})
    if config.image_size is None:  # the model's own size, known once it loads
        del settings["image_size"]
    if Path(config.clip_model).expanduser().is_dir():  # the same folder, however it is spelled
        settings["clip_model"] = str(Path(config.clip_model).expanduser().resolve())
    fields: dict[str, Any] = {
        "settings": settings,
        "export": {"digest": inputs.digest, "objects": inputs.objects, "views": inputs.views},
        "training_keys": inputs.keys_digest,
        "world_size": world_size,
    }
    if base_revision is not None:
        fields["base_model"] = {"revision": base_revision}
    return Fingerprint.of(fields)


def saved_fingerprint(meta: dict) -> Fingerprint | None:
    """The fingerprint in a checkpoint's ovt_config.json; None for checkpoints made before them."""
    return Fingerprint.model_validate(meta["fingerprint"]) if meta.get("fingerprint") else None


def stale_fields(saved: Fingerprint | None, now: Fingerprint) -> list[tuple[str, Any, Any]]:
    """(field, saved value, value now) for each field that differs. Fields `now` lacks (the base
    model's revision before it loads, image_size before the model says it) are not compared."""
    if saved is None:
        return [("(no fingerprint recorded)", None, None)]
    old = Fingerprint.of({name: value for name, value in saved.fields.items() if name in now.fields})
    return [
        (name, old.fields.get(name, "<absent>"), now.fields.get(name, "<absent>")) for name in changed_fields(old, now)
    ]


def stale_message(output_dir: Path, checkpoint: Path, differ: list[tuple[str, Any, Any]]) -> str:
    """One line: what differs, and what to do."""
    if differ and differ[0][0] == "(no fingerprint recorded)":
        what = "its checkpoints were made before mvcap recorded what a run trains on, so a resume could mix two runs"
    else:
        data = {name: (old, new) for name, old, new in differ if name.startswith("export.") or name == "training_keys"}
        parts = [
            f"{name.removeprefix('settings.')}: {_short(old)} -> {_short(new)}"
            for name, old, new in differ
            if name not in data
        ]
        if data:
            sizes = [
                f"{name[7:]}: {data[name][0]} -> {data[name][1]}"
                for name in ("export.objects", "export.views")
                if name in data
            ]
            parts.insert(0, f"another export ({', '.join(sizes) or 'as many objects and views, other files'})")
        what = "it was trained with other settings or data: " + "; ".join(parts)
    return (
        f"cannot resume {output_dir} ({checkpoint.parent.name}/{checkpoint.name}): {what}. Nothing was changed. "
        f"Train into a new --output folder, or rerun with --redo stale to start over in this one "
        f"(the old run is moved to {output_dir / PREVIOUS_DIR}/)"
    )


def _short(value: Any, width: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def segments(previous: Sequence[dict], start: int, config: TrainOVTConfig) -> list[dict]:
    """The run's segments once it resumes at `start`: those that began before it (their steps
    after `start` are redone), then this one."""
    kept = [dict(s) for s in previous if s["from_step"] < start]
    return kept + [{"from_step": start, **{name: getattr(config, name) for name in FREE_ON_RESUME}}]


def move_aside(output_dir: Path) -> Path:
    """Move the run in `output_dir` into OUTPUT/previous/<time>/ (one rename per entry, so a kill
    loses nothing: a second `--redo stale` moves what is left); return that folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, n = output_dir / PREVIOUS_DIR / stamp, 1
    while target.exists():
        n += 1
        target = output_dir / PREVIOUS_DIR / f"{stamp}-{n}"
    target.mkdir(parents=True)
    for name in RUN_FILES:
        if (output_dir / name).exists():
            os.replace(output_dir / name, target / name)
    return target
