"""Blender workers under stress: deadlines, a worker killed mid-object, recycling, shards."""

from __future__ import annotations

import threading
import time

import psutil
import pytest
from conftest import render, tiny_render

from mvcap_build.dataset import DatasetRoot, FailureLedger

WORKER_MODULE = "mvcap_build.render.blender.worker"


def _config(**overrides) -> dict:
    return tiny_render(**overrides)


def _no_staging_left(root: DatasetRoot) -> bool:
    return not [p for p in (root.path / "views").rglob(".tmp-*")]


def test_deadline_sends_objects_to_the_ledger_and_retry_recovers(tmp_path):
    root = DatasetRoot(tmp_path / "root")
    demo = {"kind": "demo", "categories": ["chair", "mug"], "per_category": 1}
    summary = render(root, _config(source=demo, timeout_s=0.01))
    assert summary.failed == {"timeout": 2} and summary.done == 0
    assert {e.reason for e in FailureLedger(root, "render")} == {"timeout"}
    assert _no_staging_left(root)
    again = render(root, _config(source=demo))
    assert again.skipped_failed == 2 and again.done == 0  # failures are data: not retried by default
    retried = render(root, _config(source=demo), retry_failed=True)
    assert retried.done == 2 and list(FailureLedger(root, "render")) == []


def _worker_processes() -> list[psutil.Process]:
    workers = []
    for child in psutil.Process().children(recursive=True):
        try:  # a child may exit between being listed and being read
            if WORKER_MODULE in " ".join(child.cmdline()):
                workers.append(child)
        except psutil.NoSuchProcess:
            continue
    return workers


def test_a_worker_killed_mid_object_costs_only_that_object(tmp_path):
    root = DatasetRoot(tmp_path / "root")
    demo = {"kind": "demo", "categories": ["chair", "table", "mug", "car"], "per_category": 1}
    config = _config(source=demo, resolution=96, samples=16, views={"num_views": 6})
    result = {}
    thread = threading.Thread(target=lambda: result.update(summary=render(root, config)))
    thread.start()
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and time.monotonic() < deadline:
        staging = list((root.path / "views").glob("demo/.tmp-*/*.png")) if (root.path / "views").exists() else []
        workers = _worker_processes()
        if staging and workers:  # a view of an object is on disk: the worker is mid-object
            workers[0].kill()
            killed = workers[0].pid
        time.sleep(0.01)
    thread.join(timeout=120)
    assert killed is not None
    summary = result["summary"]
    assert summary.failed == {"worker_crashed": 1}
    assert summary.done == 3
    [entry] = list(FailureLedger(root, "render"))
    assert "worker-0.log" in entry.detail
    assert _no_staging_left(root)


def test_workers_are_recycled(tmp_path):
    root = DatasetRoot(tmp_path / "root")
    summary = render(root, _config(recycle_after=1))
    assert summary.done == 3
    log = (root.logs("render") / "worker-0.log").read_text()
    assert log.count("compute device") == 3  # one fresh Blender process per object


def test_shards_split_the_work_without_overlap(tmp_path):
    root = DatasetRoot(tmp_path / "root")
    demo = {"kind": "demo", "categories": ["chair", "table", "mug", "car", "lamp", "sofa"], "per_category": 1}
    first = render(root, _config(source=demo), shard=0, num_shards=2)
    done_first = {p.parent.name for p in root.view_manifests()}
    second = render(root, _config(source=demo), shard=1, num_shards=2)
    done_all = {p.parent.name for p in root.view_manifests()}
    assert first.units + second.units == 6
    assert first.done == len(done_first) and second.done == 6 - len(done_first)
    assert len(done_all) == 6
    # Each shard logs into its own folder: two array tasks never write to one file.
    logs = sorted(p.relative_to(root.path).as_posix() for p in (root.path / "logs").rglob("*.log"))
    assert logs == ["logs/render/shard-00000-of-00002/worker-0.log", "logs/render/shard-00001-of-00002/worker-0.log"]


def test_a_failed_redo_removes_the_stale_object(tmp_path):
    """`--redo stale` replaces stale objects; one whose new render fails is removed, not kept as if
    it were current, and the ledger says why."""
    root = DatasetRoot(tmp_path / "root")
    demo = {"kind": "demo", "categories": ["chair", "mug"], "per_category": 1}
    assert render(root, _config(source=demo)).done == 2
    summary = render(root, _config(source=demo, samples=8, timeout_s=0.01), redo="stale")
    assert summary.failed == {"timeout": 2} and summary.done == 0
    assert list(root.view_manifests()) == [] and not list((root.path / "views" / "demo").iterdir())
    assert {e.reason for e in FailureLedger(root, "render")} == {"timeout"}
    # The ledger entries carry the new settings: a plain rerun skips them, it does not call them stale.
    again = render(root, _config(source=demo, samples=8))
    assert (again.skipped_failed, again.done) == (2, 0)


def test_workers_share_the_cores_and_the_kernel_cache(tmp_path):
    from mvcap_build.render.jobs import threads_per_worker

    assert threads_per_worker(1, 16) is None and threads_per_worker(4, 16) == 4 and threads_per_worker(32, 16) == 1
    root = DatasetRoot(tmp_path / "root")
    cache = tmp_path / "kernels"
    summary = render(root, _config(workers=2, kernel_cache=str(cache)))
    assert summary.done == 3
    assert (cache / "cuda").is_dir() and (cache / "optix").is_dir()
    logs = "".join(p.read_text() for p in root.logs("render").glob("worker-*.log"))
    assert f"threads: {threads_per_worker(2)}," in logs, logs[-2000:]  # each worker its share of the cores
    assert str(cache / "cuda") in logs and str(cache / "optix") in logs


def test_worker_messages_round_trip_and_reject_stray_lines():
    """The host and a Blender worker speak typed messages; a stray line is a clear protocol error."""
    from mvcap_build.render.protocol import ProtocolError, Ready, Rendered, RenderFailed, RenderJob, decode, encode

    job = RenderJob(
        key="demo/mug-000",
        asset={"kind": "procedural", "builder": "mug", "seed": 3},
        out_dir="/tmp/x",
        views=[{"file": "000.png"}],
        lighting={"kind": "studio"},
        framing={"mode": "fit"},
        settings={"engine": "CYCLES"},
    )
    for message in (
        job,
        Ready("5.0.1", 42),
        Rendered("demo/mug-000", {"engine": "CYCLES"}, {"distance": 2.0}),
        RenderFailed("demo/mug-000", "timeout", "no answer", fatal=False),
    ):
        line = encode(message)
        assert line.endswith("\n") and line.count("\n") == 1
        assert decode(line) == message
    for stray in ("Fra:1 Mem:12.00M | Rendering 1 / 16 samples\n", '{"no": "type"}\n', '{"type": "nope"}\n'):
        with pytest.raises(ProtocolError, match="not a worker message"):
            decode(stray)
