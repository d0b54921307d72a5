"""Is a checkpoint scored on objects it was trained on?

Every OVT checkpoint lists the object keys it was trained on (training_keys.txt, named in its
ovt_config.json: see mvcap_build/ovt/checkpoint.py); an export split lists its objects. A split
that shares objects with a checkpoint's training keys is refused, or with `--allow-overlap` scored
under a warning that goes into the report too.
"""

from __future__ import annotations

import json
from pathlib import Path

from mvcap_build.errors import UserError
from mvcap_build.eval.export_split import ExportSplit
from mvcap_build.eval.model_specs import ModelSpec
from mvcap_build.ovt.checkpoint import CONFIG_FILE, KEYS_FILE


class TrainedOnSplit(UserError, ValueError):
    """The evaluated split holds objects the checkpoint was trained on."""


def training_keys(checkpoint: Path) -> tuple[str, set[str]] | None:
    """(the column the keys come from, the keys) of a checkpoint; None when it does not list them."""
    meta = json.loads((checkpoint / CONFIG_FILE).read_text("utf-8"))
    record = (meta.get("provenance") or {}).get("training_keys")
    if not record:
        return None
    try:
        keys = (checkpoint / record.get("file", KEYS_FILE)).read_text("utf-8").splitlines()
    except OSError:
        return None
    return record.get("column", "key"), set(keys)


def check_overlap(models: list[ModelSpec], split: ExportSplit, allow: bool) -> list[str]:
    """Refuse a split that shares objects with an OVT model's training keys (TrainedOnSplit), or,
    with `allow`, return the warnings to show; also warnings for checkpoints that cannot be checked.
    A model scored on its own training objects gets `trained_on_split_objects` in its details."""
    warnings = []
    objects = set(split.keys)
    for spec in models:
        if spec.kind != "ovt":
            continue
        found = training_keys(Path(spec.location))
        if found is None:
            warnings.append(
                f"{spec.name}: its checkpoint does not list the objects it was trained on (made before mvcap "
                f"recorded them), so it cannot be checked that {split.name} holds none of them"
            )
            continue
        column, keys = found
        if column != split.identity:
            warnings.append(
                f"{spec.name} was trained on objects named by {column}, {split.name} names them by "
                f"{split.identity}: it cannot be checked that the split holds none of them"
            )
            continue
        shared = sorted(objects & keys)
        if not shared:
            continue
        what = (
            f"{spec.name} ({spec.location}) was trained on {len(shared)} of the {len(objects)} objects of "
            f"{split.name} (e.g. {shared[0]})"
        )
        if not allow:
            raise TrainedOnSplit(
                f"{what}: its scores there would not be on held-out objects. Evaluate a split it "
                "was not trained on (--split), or a model trained on this export's train split, or "
                "pass --allow-overlap to score it anyway"
            )
        spec.details["trained_on_split_objects"] = len(shared)
        warnings.append(f"WARNING: {what}; scored anyway (--allow-overlap): these figures are NOT held-out")
    return warnings
