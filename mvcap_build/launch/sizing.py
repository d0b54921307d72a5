"""Shard counts for a cluster launch whose file gives none: shards of about `target_shard_min`
each, from the stored per-GPU rates `mvcap plan --gpu` uses (`mvcap_build/plan/rates.py`).

Shards of an hour or so are what a cluster wants: short enough that a preempted or failed one
costs little and that free GPUs take the next one, long enough that the start cost (Blender,
the caption model) is a small part. `mvcap plan` measures instead of assuming; run it and write
the counts into the file for anything but a first guess.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from mvcap_build.dataset.layout import OBJECT_STAGES
from mvcap_build.plan.rates import GPU_RATES

EXTRACT_OBJECTS_PER_SHARD = 500  # a capture is a few dozen image copies: no GPU rate applies


def count_objects(producer: str, section: BaseModel) -> int:
    from mvcap_build.registry import STAGES

    return len(STAGES[producer].load()(section).objects())


def seconds_per_object(stage: str, section: BaseModel, views: float, gpu: str = "h100") -> float | None:
    rates = GPU_RATES[gpu]
    if stage == "render":
        return views / rates.render_rate(
            section.workers, section.resolution, getattr(section, "samples", 32)
        ) + rates.render_object_overhead_s / max(section.workers, 1)
    if stage == "caption":
        return views / rates.caption_views_per_s
    return None


def size_shards(
    sections: dict[str, BaseModel], target_shard_min: float, explicit: dict[str, int | None]
) -> dict[str, tuple[int, str]]:
    """stage -> (shards, why) for the sharded stages the file leaves unsized."""
    unsized = [name for name in OBJECT_STAGES if name in sections and explicit.get(name) is None]
    if not unsized:
        return {}
    producer = "render" if "render" in sections else "extract" if "extract" in sections else None
    if producer is None:
        return {}
    objects = count_objects(producer, sections[producer])
    views = float(sections["render"].views.num_views) if producer == "render" else 24.0
    sized = {}
    for name in unsized:
        per_object = seconds_per_object(name, sections[name], views)
        if per_object is None:
            shards = max(1, math.ceil(objects / EXTRACT_OBJECTS_PER_SHARD))
            why = f"{objects} objects, {EXTRACT_OBJECTS_PER_SHARD} per shard"
        else:
            shards = max(1, math.ceil(objects * per_object / (target_shard_min * 60)))
            why = f"{objects} objects x {per_object:.2f} s (stored H100 rate) in shards of ~{target_shard_min:g} min"
        sized[name] = (shards, why)
    return sized
