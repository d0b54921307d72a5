"""From measured (or stored) rates to a build's cost: per stage, shards, wall time at the
runner's parallelism, device-hours and disk; plus the Hub size.

Per shard: start cost + its objects x seconds per object. Shards run `array_parallelism` at a
time (all at once when unset), so wall time is the number of waves x one shard's time.
Training does not grow with the objects: start cost + max_steps x seconds per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mvcap_build.launch.config import SINGLE_SHARD_STAGES, RunnerConfig
from mvcap_build.pipeline.config import PipelineConfig
from mvcap_build.plan.rates import GpuRates
from mvcap_build.plan.sample import Sample, StageRate


@dataclass
class StageEstimate:
    stage: str
    shards: int
    at_once: int
    objects_per_shard: float
    shard_s: float
    wall_s: float
    wall_sd_s: float  # from how much the sampled objects differed
    device_hours: float  # GPU-hours where the stage asks for GPUs, else CPU-core-hours
    device: str
    disk_bytes: float
    basis: str  # where the rate came from


@dataclass
class Estimate:
    objects: int
    views: float
    stages: list[StageEstimate]
    hub_bytes: float
    launcher_s: float = 0.0

    @property
    def wall_s(self) -> float:
        return self.launcher_s + sum(s.wall_s for s in self.stages)

    @property
    def wall_sd_s(self) -> float:
        return math.sqrt(sum(s.wall_sd_s**2 for s in self.stages))

    @property
    def disk_bytes(self) -> float:
        return sum(s.disk_bytes for s in self.stages)


def estimate(config: PipelineConfig, sample: Sample, objects: int, gpu: GpuRates | None = None) -> Estimate:
    runner = config.runner or RunnerConfig()
    rows = []
    for name, section in config.sections():
        rate = sample.rates.get(name)
        if rate is None:
            continue
        r = runner.resources(name)
        shards = 1 if name in SINGLE_SHARD_STAGES else (r.shards or 1)
        at_once = min(shards, r.array_parallelism or shards)
        per_shard = objects / shards
        startup, per_object, basis = rate.startup_s, rate.per_object_s, f"measured here on {rate.objects} object(s)"
        if gpu is not None:
            startup, per_object, basis = _on_gpu(name, section, rate, sample, gpu, startup, per_object, basis)
        if name == "train_ovt":
            shard_s = startup + section.max_steps * (rate.per_step_s or 0.0)
            per_shard = float(objects)
        else:
            shard_s = startup + per_shard * per_object
        waves = math.ceil(shards / at_once)
        sd = waves * per_shard * rate.per_object_sem if name != "train_ovt" and gpu is None else 0.0
        gpus = r.gpus or (
            1 if gpu is not None and name in ("render", "caption") else 0
        )  # --gpu: those stages run on one each
        devices = gpus if gpus else (r.cpus or 1)
        rows.append(
            StageEstimate(
                stage=name,
                shards=shards,
                at_once=at_once,
                objects_per_shard=per_shard,
                shard_s=shard_s,
                wall_s=waves * shard_s,
                wall_sd_s=sd,
                device_hours=shards * shard_s * devices / 3600,
                device=f"{gpu.name if gpu else 'GPU'}-h" if gpus else "CPU-core-h",
                disk_bytes=0.0 if name == "train_ovt" else rate.bytes_per_object * objects,
                basis=basis,
            )
        )
    return Estimate(
        objects, sample.views_per_object * objects, rows, sample.hub_bytes_per_object * objects, sample.launcher_s
    )


def _on_gpu(name, section, rate: StageRate, sample: Sample, gpu: GpuRates, startup, per_object, basis):
    """Replace a measured rate with the stored one of that GPU where one is stored."""
    if name == "render":
        views_per_s = gpu.render_rate(section.workers, section.resolution, getattr(section, "samples", 32))
        per_object = sample.views_per_object / views_per_s + gpu.render_object_overhead_s / max(section.workers, 1)
        return gpu.render_startup_s, per_object, f"stored {gpu.name} rate ({views_per_s:.1f} views/s at these settings)"
    if name == "caption" and getattr(section.backend, "kind", "") in ("hf", "vllm"):
        return (
            rate.startup_s,
            sample.views_per_object / gpu.caption_views_per_s,
            f"stored {gpu.name} rate ({gpu.caption_views_per_s:g} views/s)",
        )
    return startup, per_object, basis + " (no stored GPU rate)"
