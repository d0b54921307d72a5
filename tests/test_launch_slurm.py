"""`mvcap launch` on a real one-node Slurm cluster (munge + slurmctld + slurmd, through submitit):
equal to `mvcap build`, arrays split below MaxArraySize, a cancelled shard, a requeued shard."""

from __future__ import annotations

import json
import subprocess

from launch_fixtures import (  # noqa: F401 - fixtures
    assert_same_root,
    committed_views,
    demo_pipeline,
    markers,
    mvcap,
    mvcap_background,
    reference_root,
    shards,
    slurm_cluster,
    wait_for,
)

# Shard 0 of 3 holds chair, mug, bottle and sofa: a kill after its first object lands mid-shard.
SHARD0_FIRST = {"chair-000", "mug-000", "bottle-000", "sofa-000"}


def slurm_runner(**extra) -> dict:
    runner = shards(render=3, caption=2) | {"kind": "slurm", "poll_s": 0.5, "defaults": {"cpus": 1, "time_min": 30}}
    runner.update(extra)
    return runner


def job_of(root, stage: str, shard: int) -> str:
    state = json.loads((root / "launch" / "state.json").read_text())
    return state["stages"][stage]["jobs"][str(shard)]


def test_slurm_launch_equals_build(tmp_path, slurm_cluster, reference_root):  # noqa: F811
    root = tmp_path / "root"
    pipeline = demo_pipeline(tmp_path / "p.yaml", root, slurm_runner(slurm_max_array_size=2), slow=True)
    result = mvcap("launch", str(pipeline))
    assert result.returncode == 0, result.stdout + result.stderr
    assert_same_root(reference_root, root)
    render = markers(root, "render")
    arrays = {m["job"].split("_")[0] for m in render.values()}
    assert len(arrays) == 2, render  # 3 shards, at most 2 per array
    assert all(m["job"] and m["host"] for m in render.values())
    for stage in ("caption", "export", "train_ovt"):
        assert all(m["status"] == "done" and m["job"] for m in markers(root, stage).values())
    assert list((root / "logs" / "launch" / "slurm" / "render").glob("*/*_log.out"))  # submitit's own logs kept
    status = mvcap("status", str(root))
    assert "runner slurm" in status.stdout and "render: 3/3 done" in status.stdout


def launch_until_shard0_has_an_object(tmp_path):
    """Launch the demo with render shards one at a time; return once shard 0 committed one object."""
    root = tmp_path / "root"
    runner = slurm_runner()
    runner["stages"]["render"]["array_parallelism"] = 1  # shard 0 first, alone
    pipeline = demo_pipeline(tmp_path / "p.yaml", root, runner, slow=True)
    launch = mvcap_background("launch", str(pipeline))
    wait_for(lambda: committed_views(root) & SHARD0_FIRST, what="shard 0's first object")
    return root, pipeline, launch, job_of(root, "render", 0)


def assert_shard0_resumed(root) -> None:
    summary = markers(root, "render")[0]["summary"]
    assert summary["already_done"] >= 1 and summary["already_done"] + summary["done"] == len(SHARD0_FIRST)


def test_a_cancelled_shard_is_reported_and_relaunch_runs_only_it(tmp_path, slurm_cluster, reference_root):  # noqa: F811
    root, pipeline, launch, job = launch_until_shard0_has_an_object(tmp_path)
    subprocess.run(["scancel", job], check=True)
    out, _ = launch.communicate(timeout=600)
    assert launch.returncode == 1, out
    assert f"render shard 0/3 ended without finishing (job {job}): CANCELLED" in out
    assert "later stages were not submitted" in out
    assert not (root / "captions").exists()
    kept = committed_views(root) & SHARD0_FIRST
    assert 1 <= len(kept) < len(SHARD0_FIRST), kept
    status = mvcap("status", str(root))
    assert "render: 2/3 done" in status.stdout and "ended without finishing (shards 0" in status.stdout

    again = mvcap("launch", str(pipeline))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "render: submitted 1 of 3 shard(s)" in again.stdout
    shard0 = markers(root, "render")[0]["summary"]
    assert shard0["already_done"] == len(kept) and shard0["done"] == len(SHARD0_FIRST) - len(kept)
    assert_same_root(reference_root, root)


def test_a_requeued_shard_resumes_from_its_committed_objects(tmp_path, slurm_cluster, reference_root):  # noqa: F811
    root, pipeline, launch, job = launch_until_shard0_has_an_object(tmp_path)
    subprocess.run(["scontrol", "requeue", job], check=True)
    wait_for(lambda: "PENDING" in _state(job), timeout=60, every=0.2, what="the requeued job to be pending")
    release(job)
    out, _ = launch.communicate(timeout=600)
    assert launch.returncode == 0, out
    log = (root / "logs" / "render" / "shard-00000-of-00003" / "launch.log").read_text()
    assert log.count("==== ") >= 3 and log.count("run-shard") == 2, log  # two attempts, the second to the end
    assert_shard0_resumed(root)
    assert_same_root(reference_root, root)


def _state(job: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout


def test_a_preempted_shard_is_requeued_by_submitit_and_resumes(tmp_path, slurm_cluster, reference_root):  # noqa: F811
    """Slurm signals USR2 before preempting a job or at `--signal=USR2@90` before its time limit;
    submitit's handler checkpoints the shard (our Checkpointable resubmits the same call) and
    requeues the job itself."""
    root, pipeline, launch, job = launch_until_shard0_has_an_object(tmp_path)
    # scancel may answer "can not be altered now" while submitit, on that very signal, is
    # already requeueing the job: what counts is that the job goes back to pending.
    subprocess.run(["scancel", "--signal=USR2", job], capture_output=True)
    wait_for(lambda: "PENDING" in _state(job), timeout=60, every=0.2, what="submitit to requeue the job")
    release(job)
    out, _ = launch.communicate(timeout=600)
    assert launch.returncode == 0, out
    submitit_log = "".join(
        p.read_text(errors="replace") for p in (root / "logs" / "launch" / "slurm" / "render").glob("*/*_log.*")
    )
    assert "requeu" in submitit_log.lower(), submitit_log[-2000:]
    assert_shard0_resumed(root)
    assert_same_root(reference_root, root)


def release(job: str) -> None:
    """Slurm holds a requeued job back for about two minutes; let it start now (asked until it
    does: the requeue may still be settling when the job first shows as pending)."""

    def started() -> bool:
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)
        return "PENDING" not in _state(job)

    wait_for(started, timeout=150, every=1.0, what="the requeued job to start again")
