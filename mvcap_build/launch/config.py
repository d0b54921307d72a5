"""The `runner:` section of a pipeline file: where `mvcap launch` runs each stage's shards.

The stages never see any of this: a runner only decides how many shards a stage is split into,
what each shard may use (GPUs, CPUs, memory, time) and which Python environment runs it.

    runner:
      kind: slurm                  # local | slurm | ray
      defaults: {cpus: 8, time_min: 240, partition: gpu}
      stages:
        render:  {shards: 64, gpus: 1, array_parallelism: 16}
        caption: {shards: 16, gpus: 1, python: .venv-vllm/bin/python}
      # or every stage in a container image (docker/Dockerfile's targets; see container.py):
      #   render: {shards: 64, gpus: 1, image: localhost/mvcap-build:blender}
      #   caption: {shards: 16, gpus: 1, image: localhost/mvcap-build:vllm}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Stages that write one thing from the whole root: always one shard.
SINGLE_SHARD_STAGES = ("export", "hub", "train_ovt")


class StageResources(BaseModel):
    """What one shard of a stage gets. Unset fields fall back to `runner.defaults`."""

    model_config = ConfigDict(extra="forbid")

    shards: int | None = Field(None, ge=1)  # render/extract/caption; export and train run as one
    gpus: int | None = Field(None, ge=0)  # per shard (Slurm --gpus-per-node, Ray num_gpus)
    cpus: int | None = Field(None, ge=1)  # per shard (Slurm --cpus-per-task, Ray num_cpus)
    mem_gb: float | None = Field(None, gt=0)  # Slurm --mem; Ray `memory`
    time_min: float | None = Field(None, gt=0)  # Slurm --time; local and Ray: a deadline per shard
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    array_parallelism: int | None = Field(None, ge=1)  # Slurm %N; local and Ray: shards at once
    # The Python of the environment that runs this stage (default: launch's own; with `image`,
    # the image's `python`).
    python: Path | None = None
    # Run each shard inside this container image (podman name, or an Apptainer .sif / docker:// URI).
    image: str | None = None
    retries: int | None = Field(None, ge=0)  # Ray: reruns after a worker or node is lost


class ContainerConfig(BaseModel):
    """How shards of stages with an `image:` are started (mvcap_build/launch/container.py)."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["auto", "podman", "apptainer"] = "auto"  # auto: podman if installed, else apptainer
    network: str = "host"  # podman --network: host lets a stage download (Objaverse, the Hub); none for offline stages
    mounts: list[Path] = Field(default_factory=list)  # more host folders, at the same path inside (data, model caches)
    options: list[str] = Field(default_factory=list)  # more engine options, e.g. ["--shm-size", "16g"]
    # For shards with gpus; default: podman --device nvidia.com/gpu=all (CDI), apptainer --nv.
    gpu_options: list[str] | None = None


class RunnerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "slurm", "ray"] = "local"
    defaults: StageResources = Field(default_factory=StageResources)
    stages: dict[str, StageResources] = Field(default_factory=dict)
    # slurm/ray: render/extract/caption without `shards` get shards of about this long (stored H100 rates)
    target_shard_min: float = Field(60.0, gt=0)
    poll_s: float = Field(30.0, gt=0)  # how often launch looks at markers and the scheduler (no tight polling)
    # ray: a running cluster ("auto", "ray://host:10001", host:port); None: start one here.
    ray_address: str | None = None
    slurm_folder: Path | None = None  # submitit's job files (default ROOT/logs/launch/slurm)
    slurm_max_array_size: int | None = Field(None, ge=1)  # default: the cluster's MaxArraySize, read with scontrol
    slurm_extra: dict[str, str] = Field(default_factory=dict)  # more sbatch options, e.g. {constraint: h100}
    container: ContainerConfig = Field(default_factory=ContainerConfig)  # for stages with `image:`

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, stages: dict[str, StageResources]) -> dict[str, StageResources]:
        from mvcap_build.registry import STAGES

        unknown = sorted(set(stages) - set(STAGES))
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; the stages are {list(STAGES)}")
        for name in SINGLE_SHARD_STAGES:
            if name in stages and (stages[name].shards or 1) != 1:
                raise ValueError(f"{name} writes one thing from the whole root: it runs as one shard")
        return stages

    def resources(self, stage: str) -> StageResources:
        """The stage's own settings over the defaults."""
        own = self.stages.get(stage, StageResources())
        merged = self.defaults.model_dump() | {k: v for k, v in own.model_dump().items() if v is not None}
        return StageResources.model_validate(merged)
