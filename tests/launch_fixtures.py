"""What the launch tests share: a demo pipeline file with a runner section, a reference root made
by `mvcap build` of the same file, a comparison of two roots, and the real clusters (a one-node
Slurm from scripts/slurm-cluster.sh, a local Ray cluster on 127.0.0.1 with logical GPUs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, assert_same_pixels, tiny_render
from PIL import Image

# Enough objects that a shard holds several, and views slow enough (96 px, 16 samples, 8 views:
# about half a second an object here) that a kill lands between two of a shard's objects.
CATEGORIES = ["chair", "table", "stool", "mug", "bottle", "lamp", "car", "sofa"]


def demo_pipeline(path: Path, root: Path, runner: dict, *, slow: bool = False, **sections) -> Path:
    render = tiny_render(source={"kind": "demo", "categories": CATEGORIES, "per_category": 1}, views={"num_views": 6})
    if slow:
        render.update(resolution=96, samples=16, views={"num_views": 8})
    config = {
        "root": str(root),
        "render": render,
        "caption": {"backend": "template"},
        "export": {"name": "launch-test", "rows_per_parquet": 20},
        "train_ovt": {
            "clip_model": "tiny-random",
            "objects_per_batch": 2,
            "views_per_object": 2,
            "hard_views": 1,
            "max_steps": 2,
            "save_every": 2,
            "log_every": 1,
            "num_workers": 0,
        },
        "runner": runner,
        **sections,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def shards(render: int = 3, caption: int = 2, **extra) -> dict:
    return {"stages": {"render": {"shards": render}, "caption": {"shards": caption}}, **extra}


def mvcap(*args: str, env: dict | None = None, timeout: float = 900, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mvcap_build", *args],
        capture_output=True,
        text=True,
        env=(os.environ | (env or {})),
        timeout=timeout,
        **kwargs,
    )


def mvcap_background(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mvcap_build", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=(os.environ | (env or {})),
    )


def committed_views(root: Path) -> set[str]:
    return {p.parent.name for p in (root / "views").glob("*/*/views.json")}


def wait_for(condition, timeout: float = 300, every: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def assert_same_root(reference: Path, root: Path) -> None:
    """Equal as `mvcap build` made it: objects, views (pixels within the Cycles tolerance),
    captions, metadata and the Parquet rows byte for byte, images by pixels."""
    assert sorted(p.name for p in (root / "objects").iterdir()) == sorted(
        p.name for p in (reference / "objects").iterdir()
    )
    for table in (reference / "objects").iterdir():
        assert (root / "objects" / table.name).read_bytes() == table.read_bytes()
    ref_views = sorted(p.relative_to(reference) for p in (reference / "views").rglob("*") if p.is_file())
    new_views = sorted(p.relative_to(root) for p in (root / "views").rglob("*") if p.is_file())
    assert new_views == ref_views
    for rel in ref_views:
        if rel.suffix == ".png":
            assert_same_pixels(_pixels(reference / rel), _pixels(root / rel), str(rel))
    ref_captions = sorted(p.relative_to(reference) for p in (reference / "captions").rglob("*.json"))
    assert sorted(p.relative_to(root) for p in (root / "captions").rglob("*.json")) == ref_captions
    for rel in ref_captions:
        assert (root / rel).read_bytes() == (reference / rel).read_bytes(), rel
    for rel in sorted(p.relative_to(reference) for p in (reference / "export" / "metadata").glob("*.json")):
        assert (root / rel).read_bytes() == (reference / rel).read_bytes(), rel
    ref_parquet = sorted(p.relative_to(reference) for p in (reference / "export" / "data").glob("*.parquet"))
    assert sorted(p.relative_to(root) for p in (root / "export" / "data").glob("*.parquet")) == ref_parquet
    for rel in ref_parquet:
        a, b = pq.read_table(reference / rel), pq.read_table(root / rel)
        assert a.schema == b.schema
        columns = [c for c in a.column_names if c != "image"]
        assert a.select(columns).to_pylist() == b.select(columns).to_pylist(), rel
        for index, (x, y) in enumerate(zip(a.column("image").to_pylist(), b.column("image").to_pylist(), strict=True)):
            assert_same_pixels(_decode(x["bytes"]), _decode(y["bytes"]), f"{rel} row {index}")
    assert not [p for p in (root / "views").rglob(".tmp-*")], "staging leftovers"
    assert list((root / "train" / "ovt").glob("checkpoints/step-*")), "train_ovt left no checkpoint"


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA")).astype(int)


def _decode(data: bytes) -> np.ndarray:
    import io

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGBA")).astype(int)


def markers(root: Path, stage: str) -> dict[int, dict]:
    """shard -> its marker, for the one generation this root has of the stage."""
    folders = list((root / "launch" / "markers" / stage).iterdir())
    assert len(folders) == 1, folders
    found = {}
    for path in folders[0].glob("shard-*.json"):
        data = json.loads(path.read_text())
        found.setdefault(data["shard"], data)
        if data["status"] == "done":
            found[data["shard"]] = data
    return found


# clusters ------------------------------------------------------------------------------------
def _slurm_answers() -> bool:
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real one-node Slurm: the one SLURM_CONF names (scripts/with-slurm.sh, .ci/run), else one
    started here for this session and stopped at its end."""
    if os.environ.get("SLURM_CONF") and _slurm_answers():
        yield os.environ["SLURM_CONF"]
        return
    if shutil.which("slurmctld") is None:
        pytest.fail("Slurm is not installed: run `bash scripts/slurm-cluster.sh install` (README's test command does)")
    folder = tmp_path_factory.mktemp("slurm")
    script = str(REPO / "scripts" / "slurm-cluster.sh")
    started = subprocess.run(["bash", script, "start", str(folder)], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, f"could not start Slurm: {started.stdout}{started.stderr}"
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(folder / "slurm.conf")
    try:
        yield os.environ["SLURM_CONF"]
    finally:
        subprocess.run(["bash", script, "stop", str(folder)], capture_output=True, timeout=120)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster on 127.0.0.1: a head with no CPUs (so every task lands on a worker
    node the test can remove) and one worker node with 2 CPUs and 2 logical GPUs."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "num_gpus": 0})
    cluster.add_node(num_cpus=2, num_gpus=2)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture(scope="session")
def reference_root(tmp_path_factory) -> Path:
    """The demo pipeline made by `mvcap build`, which every launched root must equal."""
    folder = tmp_path_factory.mktemp("reference")
    root = folder / "root"
    pipeline = demo_pipeline(folder / "pipeline.yaml", root, shards(), slow=True)
    result = mvcap("build", str(pipeline), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    return root
