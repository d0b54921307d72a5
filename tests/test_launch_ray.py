"""`mvcap launch` on a real local Ray cluster (127.0.0.1, logical GPUs): equal to `mvcap build`,
captioning by actors that keep their backend across shards, a worker SIGKILLed mid-object, a
node removed mid-run."""

from __future__ import annotations

import os
import re
import signal

import psutil
from launch_fixtures import (  # noqa: F401 - fixtures
    assert_same_root,
    committed_views,
    demo_pipeline,
    markers,
    mvcap,
    mvcap_background,
    ray_cluster,
    reference_root,
    shards,
    wait_for,
)

SHARD0_FIRST = {"chair-000", "mug-000", "bottle-000", "sofa-000"}  # shard 0 of 3


def ray_runner(address: str, **extra) -> dict:
    runner = shards(render=3, caption=2) | {
        "kind": "ray",
        "ray_address": address,
        "poll_s": 0.5,
        "defaults": {"cpus": 1},
    }
    runner["stages"]["render"]["array_parallelism"] = 1  # shard 0 first, alone: a kill lands where the test expects
    runner.update(extra)
    return runner


def shard_process(stage: str = "render", shard: int = 0) -> psutil.Process | None:
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "run-shard" in cmdline and f"--stage {stage} --shard {shard} " in " ".join(cmdline) + " ":
            return process
    return None


def test_ray_launch_equals_build_with_caption_actors(tmp_path, ray_cluster, reference_root):  # noqa: F811
    root = tmp_path / "root"
    runner = ray_runner(ray_cluster.address)
    runner["stages"]["caption"] |= {"gpus": 2}  # one actor holds both logical GPUs: both shards go to it
    pipeline = demo_pipeline(tmp_path / "p.yaml", root, runner, slow=True)
    result = mvcap("launch", str(pipeline))
    assert result.returncode == 0, result.stdout + result.stderr
    assert_same_root(reference_root, root)
    actors = set()
    for shard in range(2):
        log = (root / "logs" / "caption" / f"shard-{shard:05d}-of-00002" / "launch.log").read_text()
        actors |= set(re.findall(r"in caption actor (\d+)", log))
    assert len(actors) == 1, actors  # one process, one backend, both shards
    assert all(m["status"] == "done" for m in markers(root, "render").values())
    status = mvcap("status", str(root))
    assert "runner ray" in status.stdout and "caption: 2/2 done" in status.stdout


def test_a_ray_worker_killed_mid_object_is_retried(tmp_path, ray_cluster, reference_root):  # noqa: F811
    root = tmp_path / "root"
    pipeline = demo_pipeline(tmp_path / "p.yaml", root, ray_runner(ray_cluster.address), slow=True)
    launch = mvcap_background("launch", str(pipeline))
    wait_for(lambda: committed_views(root) & SHARD0_FIRST, what="shard 0's first object")
    shard = wait_for(shard_process, timeout=30, what="shard 0's process")
    worker = shard.parent()
    assert "ray" in " ".join(worker.cmdline()).lower(), worker.cmdline()
    os.kill(worker.pid, signal.SIGKILL)  # the Ray worker; the shard dies with it
    kept = committed_views(root) & SHARD0_FIRST
    out, _ = launch.communicate(timeout=600)
    assert launch.returncode == 0, out
    assert len(kept) < len(SHARD0_FIRST), "the kill must land mid-shard"
    log = (root / "logs" / "render" / "shard-00000-of-00003" / "launch.log").read_text()
    assert log.count("run-shard") == 2, log  # retried once, by Ray
    summary = markers(root, "render")[0]["summary"]
    assert summary["already_done"] >= 1 and summary["already_done"] + summary["done"] == len(SHARD0_FIRST)
    assert_same_root(reference_root, root)


def test_a_node_removed_mid_run_is_retried_elsewhere(tmp_path, reference_root):  # noqa: F811
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes = [cluster.add_node(num_cpus=1), cluster.add_node(num_cpus=1)]
    cluster.wait_for_nodes()
    try:
        root = tmp_path / "root"
        pipeline = demo_pipeline(tmp_path / "p.yaml", root, ray_runner(cluster.address), slow=True)
        launch = mvcap_background("launch", str(pipeline))
        wait_for(lambda: committed_views(root) & SHARD0_FIRST, what="shard 0's first object")
        shard = wait_for(shard_process, timeout=30, what="shard 0's process")
        raylets = {p.pid for p in shard.parents()}
        running_it = [n for n in nodes if n.all_processes["raylet"][0].process.pid in raylets]
        assert len(running_it) == 1
        cluster.remove_node(running_it[0], allow_graceful=False)
        kept = committed_views(root) & SHARD0_FIRST
        out, _ = launch.communicate(timeout=600)
        assert launch.returncode == 0, out
        assert len(kept) < len(SHARD0_FIRST), "the node must go mid-shard"
        log = (root / "logs" / "render" / "shard-00000-of-00003" / "launch.log").read_text()
        assert log.count("run-shard") == 2, log
        assert_same_root(reference_root, root)
    finally:
        cluster.shutdown()
