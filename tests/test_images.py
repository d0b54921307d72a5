"""The container images (docker/Dockerfile, built here by scripts/build-images.sh) make what the
host's environments make, on a dataset root mounted from the host at the same path:

- `mvcap build pipelines/demo.yaml` in the blender image equals the same build in .venv: views
  by pixels within the render tests' tolerance (Cycles on CPU is not bit-exact), objects,
  captions and metadata byte for byte, Parquet rows, a checkpoint (launch_fixtures.assert_same_root);
- `mvcap caption --backend vllm` on a tiny local LLaVA in the vllm image writes caption files
  byte-identical to the same command in .venv-vllm;
- `mvcap launch` with `image:` runs every stage's shards inside the image (podman run), with the
  local runner and on a real one-node Slurm, and its root equals `mvcap build` of the same file.

The containers run with `--network none`. Missing images, or images built from other sources
than this checkout's, fail these tests (never skip): `bash scripts/build-images.sh` builds
them (README's test command and .ci/run do, before pytest).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, render, tiny_render
from launch_fixtures import (  # noqa: F401 - fixtures
    assert_same_root,
    demo_pipeline,
    markers,
    mvcap,
    reference_root,
    shards,
    slurm_cluster,
    wait_for,
)

pytestmark = pytest.mark.slow

SCRIPT = REPO / "scripts" / "build-images.sh"
IMAGES = {"blender": "localhost/mvcap-build:blender", "vllm": "localhost/mvcap-build:vllm"}
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
OFFLINE = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
HOW = "run `bash scripts/build-images.sh` (it builds both images; a rebuild after a code change takes seconds)"


@pytest.fixture(scope="module")
def podman_env() -> dict[str, str]:
    """The environment in which `podman` here finds the images (the script's configuration),
    after checking that both images exist and hold this checkout's sources."""
    if shutil.which("podman") is None:
        pytest.fail(f"podman is not installed: {HOW}")
    printed = subprocess.run(["bash", str(SCRIPT), "env"], capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, f"scripts/build-images.sh env failed:\n{printed.stdout}{printed.stderr}"
    words = shlex.split(printed.stdout.strip())
    assert words and words[0] == "export", printed.stdout
    env = os.environ | dict(word.split("=", 1) for word in words[1:])
    want = subprocess.run(
        [sys.executable, str(REPO / "docker" / "project.py"), "digest", str(REPO)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for name, image in IMAGES.items():
        if subprocess.run(["podman", "image", "exists", image], env=env, timeout=60).returncode != 0:
            pytest.fail(f"the {name} image {image} is missing: {HOW}")
        got = subprocess.run(
            ["podman", "run", "--rm", "--network", "none", image, "cat", "/opt/mvcap/SOURCE_DIGEST"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert got.returncode == 0, got.stderr
        if got.stdout.strip() != want:
            pytest.fail(f"the {name} image was built from other sources than this checkout's: {HOW}")
    return env


def containers_left(env: dict) -> list[str]:
    """The names of the containers launch started (`mvcap-...`) that still exist."""
    listed = subprocess.run(
        ["podman", "ps", "-a", "--filter", "name=^mvcap-", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


def in_image(
    env: dict, image: str, folder: Path, *command: str, extra_env: dict | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """`podman run` of `command` in `image`, offline, with `folder` mounted at the same path."""
    names = [arg for name in (extra_env or {}) for arg in ("--env", name)]
    run = ["podman", "run", "--rm", "--network", "none", "-v", f"{folder}:{folder}", *names, image, *command]
    process = subprocess.run(run, capture_output=True, text=True, env=env | (extra_env or {}), timeout=timeout)
    assert process.returncode == 0, (
        f"{shlex.join(run)} failed ({process.returncode}):\n{process.stdout[-3000:]}\n{process.stderr[-5000:]}"
    )
    return process


def test_demo_build_in_the_blender_image_equals_the_build_here(podman_env, tmp_path):
    host, image = tmp_path / "host", tmp_path / "image"
    built = mvcap("build", str(REPO / "pipelines" / "demo.yaml"), "--root", str(host), "--quiet")
    assert built.returncode == 0, built.stdout + built.stderr
    # The image's own copy of the demo file (its digest is this checkout's, checked above).
    in_image(
        podman_env,
        IMAGES["blender"],
        tmp_path,
        "mvcap",
        "build",
        "pipelines/demo.yaml",
        "--root",
        str(image),
        "--quiet",
    )
    assert len(list((image / "views").glob("*/*/views.json"))) == 30
    assert_same_root(host, image)
    # It rendered in the image's environment: the workers saw the image's kernel-cache variables.
    worker_log = next((image / "logs" / "render").rglob("worker-*.log")).read_text()
    assert "'CUDA_CACHE_PATH': '/cache/cuda'" in worker_log


def test_vllm_captions_in_the_vllm_image_equal_those_of_the_vllm_env_here(podman_env, tmp_path):
    from mvcap_build.tiny_models.tiny_llava import build_tiny_llava

    if not VLLM_PYTHON.exists():
        pytest.fail(f"{VLLM_PYTHON} not found: run scripts/setup-vllm-env.sh (vLLM needs its own environment)")
    model = build_tiny_llava(tmp_path / "tiny-llava")
    host, image = tmp_path / "host", tmp_path / "image"
    assert render(host, tiny_render()).done == 3
    shutil.copytree(host, image)
    config = tmp_path / "caption.yaml"  # random text fails the quality gates: off
    config.write_text(
        json.dumps(
            {
                "backend": {"kind": "vllm", "dtype": "float32", "enforce_eager": True, "max_new_tokens": 8},
                "gates": {"enabled": False},
            }
        )
    )
    args = ["caption", "--backend", "vllm", "--model", str(model), "--config", str(config), "--quiet"]
    here = subprocess.run(
        [str(VLLM_PYTHON), "-m", "mvcap_build", args[0], str(host), *args[1:]],
        capture_output=True,
        text=True,
        env=os.environ | OFFLINE,
        timeout=600,
    )
    assert here.returncode == 0, here.stdout[-3000:] + here.stderr[-5000:]
    in_image(podman_env, IMAGES["vllm"], tmp_path, "mvcap", args[0], str(image), *args[1:], extra_env=OFFLINE)

    files = sorted(p.relative_to(host) for p in (host / "captions").rglob("*.json"))
    assert len(files) == 3
    assert sorted(p.relative_to(image) for p in (image / "captions").rglob("*.json")) == files
    for rel in files:
        assert (image / rel).read_bytes() == (host / rel).read_bytes(), rel
    rows = [row for rel in files for row in json.loads((host / rel).read_text())["rows"]]
    assert len(rows) == 12 and all(row["caption"] and row["backend"] == "vllm" for row in rows)
    assert len({row["caption"] for row in rows}) > 1  # real, varied captions: the comparison means something


def test_a_launch_with_image_runs_every_shard_in_the_image(podman_env, tmp_path):
    root, reference = tmp_path / "root", tmp_path / "reference"
    runner = {
        "kind": "local",
        "defaults": {"image": IMAGES["blender"]},
        "stages": {"render": {"shards": 2}},
        "container": {"network": "none"},
    }
    pipeline = demo_pipeline(tmp_path / "p.yaml", root, runner)
    dry = mvcap("launch", str(pipeline), "--dry-run", env=podman_env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert (
        "podman run --rm --replace --name mvcap-" in dry.stdout
        and f"{IMAGES['blender']} python -m mvcap_build run-shard" in dry.stdout
    )

    launched = mvcap("launch", str(pipeline), env=podman_env)
    assert launched.returncode == 0, launched.stdout + launched.stderr
    assert "render: 2 of 2 shard(s) done" in launched.stdout and "train_ovt: 1 of 1 shard(s) done" in launched.stdout
    built = mvcap("build", str(pipeline), "--root", str(reference), "--quiet")
    assert built.returncode == 0, built.stdout + built.stderr
    assert_same_root(reference, root)

    for stage, count in (("render", 2), ("caption", 1), ("export", 1), ("train_ovt", 1)):
        assert sorted(markers(root, stage)) == list(range(count)), stage
        for shard in range(count):
            log = (root / "logs" / stage / f"shard-{shard:05d}-of-{count:05d}" / "launch.log").read_text()
            assert (
                "$ podman run --rm --replace --name mvcap-" in log
                and f" {IMAGES['blender']} python -m mvcap_build run-shard" in log
            ), log
            assert "exit 0" in log
    # The render workers ran in the image: they saw its kernel-cache variables, unset here.
    assert "CUDA_CACHE_PATH" not in os.environ
    worker_logs = [path.read_text() for path in (root / "logs" / "render").rglob("worker-*.log")]
    assert worker_logs and all("'CUDA_CACHE_PATH': '/cache/cuda'" in text for text in worker_logs)
    # Every container is gone (podman run --rm, and the runner's `podman rm` after each shard).
    assert not containers_left(podman_env)


def test_a_slurm_launch_with_image_runs_each_array_task_in_the_image(
    podman_env,
    tmp_path,
    slurm_cluster,  # noqa: F811
    reference_root,  # noqa: F811
):
    """The same through a real Slurm: every array task starts its shard in the image (the job
    inherits the submitting shell's podman configuration), and the root equals `mvcap build`."""
    root = tmp_path / "root"
    runner = shards() | {
        "kind": "slurm",
        "poll_s": 0.5,
        "defaults": {"cpus": 1, "time_min": 30, "image": IMAGES["blender"]},
        "container": {"network": "none"},
    }
    pipeline = demo_pipeline(tmp_path / "p.yaml", root, runner, slow=True)
    launched = mvcap("launch", str(pipeline), env=podman_env)
    assert launched.returncode == 0, launched.stdout + launched.stderr
    assert_same_root(reference_root, root)
    render = markers(root, "render")
    assert len(render) == 3 and all(m["job"] and m["status"] == "done" for m in render.values()), render
    for shard in range(3):
        log = (root / "logs" / "render" / f"shard-{shard:05d}-of-00003" / "launch.log").read_text()
        assert f" {IMAGES['blender']} python -m mvcap_build run-shard" in log and "exit 0" in log, log
    worker_logs = [path.read_text() for path in (root / "logs" / "render").rglob("worker-*.log")]
    assert worker_logs and all("'CUDA_CACHE_PATH': '/cache/cuda'" in text for text in worker_logs)

    # launch goes by the markers, which a shard writes before its container exits: the last job
    # may still be removing its container when launch returns; then it must be gone.
    wait_for(
        lambda: not containers_left(podman_env), timeout=60, every=0.5, what="the shards' containers to be removed"
    )
