"""How a shard with `image:` is started: the podman or Apptainer command line, what is mounted,
what stays out, and the checks that keep a misconfigured container launch to one line.
(tests/test_images.py runs such shards in real images.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from launch_fixtures import demo_pipeline, mvcap

from mvcap_build.errors import ConfigError
from mvcap_build.launch.config import ContainerConfig, RunnerConfig
from mvcap_build.launch.container import container_name, in_image, mounts_for
from mvcap_build.render.config import RenderConfig

COMMAND = ("python", "-m", "mvcap_build", "run-shard", "/r/launch/pipelines/p.yaml", "--stage", "render")


def _render_settings(tmp_path: Path, **overrides) -> RenderConfig:
    return RenderConfig.model_validate({"source": {"kind": "demo"}, **overrides})


def test_mounts_are_the_root_and_existing_absolute_paths_of_the_settings(tmp_path):
    root, meshes, cache, extra = (tmp_path / name for name in ("root", "meshes", "kernels", "models"))
    for folder in (root, meshes, cache, extra, meshes / "sub"):
        folder.mkdir()
    settings = RenderConfig.model_validate(
        {"source": {"kind": "local", "folder": str(meshes)}, "kernel_cache": str(cache)}
    )
    paths = mounts_for(root, settings, [extra, meshes / "sub", Path("/usr/lib"), tmp_path / "missing"])
    assert paths[0] == str(root.resolve())
    # Each existing folder once; one inside another is not mounted twice; the image's own system
    # folders and paths that do not exist here are never mounted.
    assert sorted(paths[1:]) == sorted([str(meshes), str(cache), str(extra)])


def test_podman_command_mounts_at_the_same_path_forwards_variables_and_removes_its_container(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    name = container_name(root, "train_ovt", 0, 1)
    assert name.startswith("mvcap-") and name.endswith("-train-ovt-0-of-1")
    assert container_name(tmp_path / "other", "train_ovt", 0, 1) != name  # one root's shards never clash with another's
    wrapped = in_image(
        COMMAND,
        image="localhost/mvcap-build:blender",
        config=ContainerConfig(engine="podman", network="none", options=["--shm-size", "2g"]),
        root=root,
        settings=_render_settings(tmp_path),
        name=name,
        gpus=1,
    )
    command = list(wrapped.command)
    assert command[:3] == ["podman", "run", "--rm"] and "--replace" in command
    assert command[command.index("--name") + 1] == name
    assert command[command.index("--network") + 1] == "none"
    assert f"{root.resolve()}:{root.resolve()}" in command and command[command.index("--workdir") + 1] == str(
        root.resolve()
    )
    assert command[command.index("--device") + 1] == "nvidia.com/gpu=all"  # a GPU stage gets the GPUs (CDI)
    forwarded = [command[i + 1] for i, word in enumerate(command) if word == "--env"]
    assert "SLURM_*" in forwarded and "HF_*" in forwarded and "MVCAP_*" in forwarded
    # The engine's own options, then the image, then the shard command as it was.
    assert command[-len(COMMAND) - 3 :] == ["--shm-size", "2g", "localhost/mvcap-build:blender", *COMMAND]
    assert wrapped.stop == ("podman", "rm", "--force", "--ignore", "--time", "5", name)

    cpu = in_image(
        COMMAND,
        image="img",
        config=ContainerConfig(engine="podman"),
        root=root,
        settings=_render_settings(tmp_path),
        name=name,
        gpus=0,
    )
    assert "--device" not in cpu.command


def test_apptainer_command_binds_and_asks_for_the_gpu_with_nv(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    wrapped = in_image(
        COMMAND,
        image="/images/mvcap-blender.sif",
        config=ContainerConfig(engine="apptainer"),
        root=root,
        settings=_render_settings(tmp_path),
        name="unused",
        gpus=1,
    )
    assert wrapped.command[:2] == ("apptainer", "exec")
    assert wrapped.command[wrapped.command.index("--bind") + 1] == f"{root.resolve()}:{root.resolve()}"
    assert "--nv" in wrapped.command and wrapped.command[-len(COMMAND) - 1] == "/images/mvcap-blender.sif"
    assert wrapped.stop == ()  # an ordinary child process: the runner's kill reaches it


def test_image_is_the_environment_of_a_vllm_caption_stage(tmp_path):
    """A vllm caption stage needs its own Python, unless an image is its environment."""
    from mvcap_build.launch.stages import launch_stages
    from mvcap_build.pipeline.config import PipelineConfig

    base = {"root": str(tmp_path / "r"), "caption": {"backend": {"kind": "vllm", "model": "llava"}}}
    with pytest.raises(ConfigError, match="runs in its own environment"):
        launch_stages(PipelineConfig.model_validate({**base, "runner": {"kind": "local"}}))
    runner = {"kind": "local", "stages": {"caption": {"image": "localhost/mvcap-build:vllm"}}}
    (stage,) = launch_stages(PipelineConfig.model_validate({**base, "runner": runner}))
    assert stage.python == "python"  # the image's own


def test_runner_container_section_rejects_unknown_engines_and_keys():
    with pytest.raises(ValueError, match="engine"):
        RunnerConfig.model_validate({"container": {"engine": "docker-compose"}})
    with pytest.raises(ValueError, match="mount"):
        RunnerConfig.model_validate({"container": {"mount": ["/data"]}})


def test_dry_run_prints_each_shard_in_its_image(tmp_path):
    runner = {
        "kind": "local",
        "defaults": {"image": "localhost/mvcap-build:blender"},
        "container": {"engine": "apptainer"},
        "stages": {"render": {"shards": 2}},
    }
    pipeline = demo_pipeline(tmp_path / "p.yaml", tmp_path / "root", runner)
    dry = mvcap("launch", str(pipeline), "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    lines = [line for line in dry.stdout.splitlines() if "run-shard" in line]
    assert len(lines) == 5  # render 2 + caption + export + train_ovt
    assert all(
        "apptainer exec --bind" in line and "localhost/mvcap-build:blender python -m mvcap_build run-shard" in line
        for line in lines
    ), dry.stdout
    assert not (tmp_path / "root" / "views").exists()  # a dry run writes nothing
