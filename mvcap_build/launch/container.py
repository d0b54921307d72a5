"""A shard inside a container image: the stage's `image:` (runner.stages.<stage> or defaults).

The shard command (`python -m mvcap_build run-shard ...`) is wrapped, where the runner starts
it (a local process, a Slurm array task, a Ray task), into

    podman run --rm --replace --name mvcap-<root>-<stage>-<i>-of-<n> --network host --ipc host
        -v ROOT:ROOT [-v PATH:PATH ...] -w ROOT -e 'MVCAP_*' ... IMAGE python -m mvcap_build run-shard ...

or `apptainer exec --bind ROOT:ROOT,... --pwd ROOT IMAGE python -m mvcap_build run-shard ...`.
The dataset root is mounted at the same path, so the resolved pipeline file, markers and logs
mean the same inside and out; so is every existing absolute path in the stage's settings (a
local model, a mesh folder, `kernel_cache`), and `runner.container.mounts`. Variables the shard
reads (Slurm's job ids, MVCAP_*, HF_*, ...) are passed by name, read where the shard runs.

podman: the container outlives a killed `podman run` client, so it is named after its shard;
`--replace` makes a retry of the shard remove its predecessor, and the runner removes it after
the client ends however it ended (`stop` command), so no orphan writes beside its retry.
Apptainer runs the shard as an ordinary child process. Images: docker/Dockerfile's targets
(`blender`, `vllm`), e.g. built with scripts/build-images.sh; the image's own `python` runs the
shard unless the stage names another (`python:` is then a path inside the image).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from mvcap_build.errors import ConfigError
from mvcap_build.launch.config import ContainerConfig

# Passed into the container by name (podman reads globs); Apptainer passes the environment itself.
FORWARDED_ENV = (
    "MVCAP_*",
    "HF_*",
    "HUGGING_FACE_*",
    "TRANSFORMERS_*",
    "VLLM_*",
    "OPENAI_*",
    "SLURM_*",
    "OMP_NUM_THREADS",
    "TOKENIZERS_PARALLELISM",
    "CUDA_VISIBLE_DEVICES",
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)
# Never mounted, whatever a setting names: these folders themselves (an image has its own), and
# anything under the image's system and environment.
_NOT_THEMSELVES = ("/", "/boot", "/home", "/opt", "/root", "/run", "/srv", "/tmp", "/var")
_NOT_UNDER = ("/opt/venv", "/opt/mvcap", "/usr", "/proc", "/sys", "/dev", "/etc", "/bin", "/sbin", "/lib", "/lib64")


@dataclass(frozen=True)
class Wrapped:
    command: tuple[str, ...]
    stop: tuple[str, ...] = ()  # run after the command ends, however it ended (podman rm)


def engine_of(config: ContainerConfig) -> str:
    if config.engine != "auto":
        return config.engine
    for engine in ("podman", "apptainer"):
        if shutil.which(engine):
            return engine
    raise ConfigError(
        "a stage has `image:` but neither podman nor apptainer is installed here "
        "(set runner.container.engine to the one the nodes have)"
    )


def container_name(root: Path, stage: str, shard: int, num_shards: int) -> str:
    digest = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:10]
    return f"mvcap-{digest}-{stage.replace('_', '-')}-{shard}-of-{num_shards}"


def mounts_for(root: Path, settings: BaseModel, extra: list[Path]) -> list[str]:
    """The root, then each existing absolute path in the stage's settings and `extra`, outermost
    first, none twice and none inside another (or inside the root)."""
    found: list[str] = []

    def walk(value) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, (str, Path)) and str(value).startswith("/") and "\n" not in str(value):
            found.append(os.path.normpath(str(value)))

    walk(settings.model_dump(mode="json"))
    found += [os.path.normpath(str(Path(path).expanduser().absolute())) for path in extra]
    paths = [os.path.normpath(str(Path(root).resolve()))]
    for path in sorted({p for p in found if os.path.exists(p) and _mountable(p)}, key=len):
        if not any(path == kept or path.startswith(kept.rstrip("/") + "/") for kept in paths):
            paths.append(path)
    return paths


def _mountable(path: str) -> bool:
    return path not in _NOT_THEMSELVES and not any(path == top or path.startswith(top + "/") for top in _NOT_UNDER)


def in_image(
    command: tuple[str, ...],
    *,
    image: str,
    config: ContainerConfig,
    root: Path,
    settings: BaseModel,
    name: str,
    gpus: int = 0,
) -> Wrapped:
    """`command` (its first word the Python inside the image) as the engine runs it in `image`."""
    engine = engine_of(config)
    root = Path(root).resolve()
    paths = mounts_for(root, settings, config.mounts)
    if engine == "apptainer":
        gpu = (config.gpu_options if config.gpu_options is not None else ["--nv"]) if gpus else []
        binds = ",".join(f"{path}:{path}" for path in paths)
        return Wrapped(
            ("apptainer", "exec", "--bind", binds, "--pwd", str(root), *gpu, *config.options, image, *command)
        )
    gpu = (config.gpu_options if config.gpu_options is not None else ["--device", "nvidia.com/gpu=all"]) if gpus else []
    volumes = [arg for path in paths for arg in ("-v", f"{path}:{path}")]
    env = [arg for variable in FORWARDED_ENV for arg in ("--env", variable)]
    run = (
        "podman",
        "run",
        "--rm",
        "--replace",
        "--name",
        name,
        "--network",
        config.network,
        "--ipc",
        "host",
        *volumes,
        "--workdir",
        str(root),
        *env,
        *gpu,
        *config.options,
        image,
        *command,
    )
    return Wrapped(run, stop=("podman", "rm", "--force", "--ignore", "--time", "5", name))
