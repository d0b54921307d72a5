"""What a launch runs: each stage of the pipeline file with its shard count, resources and
generation, and the resolved pipeline file that every shard reads.

The resolved file is the pipeline as launch understood it (root made absolute, shard counts
filled in), saved under ROOT/launch/pipelines/, so a shard running hours later on another node
reads exactly what was planned, whatever happened to the original file meanwhile.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel

from mvcap_build.dataset.atomic import atomic_write_text
from mvcap_build.errors import ConfigError
from mvcap_build.launch.config import SINGLE_SHARD_STAGES, RunnerConfig, StageResources
from mvcap_build.launch.markers import generation_of
from mvcap_build.pipeline.config import PipelineConfig

# Stages that no later stage reads from: another push does not make training a new generation.
LEAF_STAGES = ("hub",)


@dataclass(frozen=True)
class LaunchStage:
    name: str
    config: BaseModel
    num_shards: int
    generation: str
    resources: StageResources
    sized_by: str = ""  # why launch chose the shard count, when the file gave none

    @property
    def python(self) -> str:
        """The Python that runs a shard: the stage's `python:`, else inside an image the image's
        own `python`, else the one running launch."""
        if self.resources.python:
            return str(self.resources.python)
        return "python" if self.resources.image else sys.executable


def runner_of(config: PipelineConfig) -> RunnerConfig:
    return config.runner or RunnerConfig()


def launch_stages(config: PipelineConfig) -> list[LaunchStage]:
    """Every section of the file, in pipeline order, each with its generation."""
    runner = runner_of(config)
    sections = dict(config.sections())
    sized = {}
    if runner.kind != "local":
        from mvcap_build.launch.sizing import size_shards

        sized = size_shards(
            sections, runner.target_shard_min, {name: runner.resources(name).shards for name in sections}
        )
    stages, upstream = [], None
    for name, section in sections.items():
        resources = runner.resources(name)
        shards, why = sized.get(name, (resources.shards or 1, ""))
        num_shards = 1 if name in SINGLE_SHARD_STAGES else shards
        _check_environment(name, section, resources)
        generation = generation_of(name, section, num_shards, upstream)
        stages.append(LaunchStage(name, section, num_shards, generation, resources, why))
        if name not in LEAF_STAGES:
            upstream = generation
    if not stages:
        from mvcap_build.registry import STAGES

        raise ConfigError(f"the pipeline file has no stage section ({', '.join(STAGES)}): nothing to launch")
    return stages


def _check_environment(name: str, section: BaseModel, resources: StageResources) -> None:
    """vLLM cannot share bpy's environment: a vllm caption stage must say which Python runs it."""
    if resources.image:
        return  # the image is the environment; its `python:`, if given, is a path inside it
    backend = getattr(getattr(section, "backend", None), "kind", None)
    if name == "caption" and backend == "vllm" and resources.python is None:
        raise ConfigError(
            "caption with backend vllm runs in its own environment: set `runner.stages.caption.python` "
            "to that environment's Python (e.g. .venv-vllm/bin/python, made by scripts/setup-vllm-env.sh)"
        )
    if resources.python is not None and not Path(resources.python).is_file():
        raise ConfigError(f"runner: the Python for {name} ({resources.python}) does not exist")


def resolved_pipeline(config: PipelineConfig, stages: list[LaunchStage]) -> str:
    """The pipeline file every shard reads: absolute root, explicit shard counts."""
    data = config.model_dump(mode="json")
    data["root"] = str(Path(config.root).resolve())
    if data.get("runner") is None:
        data["runner"] = RunnerConfig().model_dump(mode="json")
    runner_stages = data["runner"]["stages"]
    for stage in stages:
        own = runner_stages.get(stage.name) or StageResources().model_dump(mode="json")
        runner_stages[stage.name] = own | {"shards": stage.num_shards}
    return yaml.safe_dump(data, sort_keys=False)


def resolved_pipeline_path(root: Path, text: str) -> Path:
    return root / "launch" / "pipelines" / f"{hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]}.yaml"


def save_resolved_pipeline(root: Path, text: str) -> Path:
    path = resolved_pipeline_path(root, text)
    if not path.is_file():
        atomic_write_text(path, text)
    return path
