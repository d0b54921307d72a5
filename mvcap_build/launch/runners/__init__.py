"""The runners `mvcap launch` can use, by their YAML name. Each only starts shard processes
(`process.run_shard_process`) and says when they have ended; markers say how."""

from __future__ import annotations

from mvcap_build.errors import EnvironmentBroken
from mvcap_build.launch.config import RunnerConfig
from mvcap_build.launch.runners.base import Runner, ShardEnd


def make_runner(config: RunnerConfig, root) -> Runner:
    """Import only the engine that is asked for: Slurm needs submitit, Ray needs ray."""
    try:
        if config.kind == "slurm":
            from mvcap_build.launch.runners.slurm import SlurmRunner

            return SlurmRunner(config, root)
        if config.kind == "ray":
            from mvcap_build.launch.runners.ray import RayRunner

            return RayRunner(config, root)
    except ModuleNotFoundError as error:
        raise EnvironmentBroken(
            f"runner {config.kind} needs the `{error.name}` package: pip install 'mvcap-build[cluster]'"
        ) from None
    from mvcap_build.launch.runners.local import LocalRunner

    return LocalRunner(config, root)


__all__ = ["Runner", "ShardEnd", "make_runner"]
