"""`mvcap launch` with the local runner: markers, relaunch, generations, failures, dry runs."""

from __future__ import annotations

import json
import shutil

import yaml
from launch_fixtures import assert_same_root, demo_pipeline, markers, mvcap, reference_root, shards  # noqa: F401


def test_local_launch_equals_build_and_relaunch_submits_nothing(tmp_path, reference_root):  # noqa: F811
    root = tmp_path / "root"
    pipeline = demo_pipeline(
        tmp_path / "p.yaml",
        root,
        shards(render=3, caption=2, defaults={"array_parallelism": 2}) | {"kind": "local"},
        slow=True,
    )
    result = mvcap("launch", str(pipeline))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "render: 3 of 3 shard(s) done" in result.stdout
    assert "caption: 2 of 2 shard(s) done" in result.stdout
    assert_same_root(reference_root, root)
    render = markers(root, "render")
    assert sorted(render) == [0, 1, 2] and all(m["status"] == "done" for m in render.values())
    assert sum(m["summary"]["done"] for m in render.values()) == 8  # each object rendered once, in one shard
    for shard in range(3):
        log = (root / "logs" / "render" / f"shard-{shard:05d}-of-00003" / "launch.log").read_text()
        assert "exit 0" in log and "run-shard" in log

    again = mvcap("launch", str(pipeline))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "submitted" not in again.stdout
    assert again.stdout.count("(before this launch)") == 4
    status = mvcap("status", str(root))
    assert "render: 3/3 done" in status.stdout and "train_ovt: 1/1 done" in status.stdout


def test_dry_run_prints_commands_and_writes_nothing(tmp_path):
    root = tmp_path / "root"
    pipeline = demo_pipeline(
        tmp_path / "p.yaml",
        root,
        shards(render=4, caption=2)
        | {"kind": "slurm", "defaults": {"partition": "gpu", "gpus": 1, "time_min": 90}, "slurm_max_array_size": 3},
    )
    result = mvcap("launch", str(pipeline), "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not root.exists()
    text = result.stdout
    assert "render: 4 shard(s) in 2 Slurm job array(s)" in text  # split below MaxArraySize
    assert "#SBATCH --array=0-2" in text and "#SBATCH --array=0-0" in text
    assert "#SBATCH --partition=gpu" in text and "#SBATCH --gpus-per-node=1" in text and "#SBATCH --time=90" in text
    assert "#SBATCH --signal=USR2@90" in text
    assert "run-shard" in text and "--stage caption --shard 1 --num-shards 2" in text


def test_changed_settings_are_a_new_generation_and_stop_as_the_stage_does(tmp_path):
    root = tmp_path / "root"
    runner = {"kind": "local", "stages": {"render": {"shards": 2}}}
    first = demo_pipeline(tmp_path / "a.yaml", root, runner, caption=None)
    data = yaml.safe_load(first.read_text())
    for name in ("caption", "export", "train_ovt"):
        data.pop(name, None)
    first.write_text(yaml.safe_dump(data))
    assert mvcap("launch", str(first)).returncode == 0
    data["render"]["resolution"] = 48
    second = tmp_path / "b.yaml"
    second.write_text(yaml.safe_dump(data))
    result = mvcap("launch", str(second))
    assert result.returncode == 1
    assert "failed with bad input or settings (exit 2)" in result.stdout
    assert "resolution" in result.stdout  # the stage's own stale message, first line
    generations = sorted(p.name for p in (root / "launch" / "markers" / "render").iterdir())
    assert len(generations) == 2
    redo = mvcap("launch", str(second), "--redo", "stale")
    assert redo.returncode == 0, redo.stdout + redo.stderr
    manifests = [json.loads(p.read_text()) for p in (root / "views").glob("*/*/views.json")]
    assert manifests and {m["views"][0]["width"] for m in manifests} == {48}


def test_a_shard_that_fails_on_bad_input_is_reported_and_later_stages_wait(tmp_path):
    root = tmp_path / "root"
    runner = shards(render=2, caption=2) | {"kind": "local"}
    pipeline = demo_pipeline(tmp_path / "p.yaml", root, runner)
    render_only = yaml.safe_load(pipeline.read_text())
    for name in ("caption", "export", "train_ovt"):
        render_only.pop(name)
    (tmp_path / "render.yaml").write_text(yaml.safe_dump(render_only))
    assert mvcap("launch", str(tmp_path / "render.yaml")).returncode == 0

    broken = sorted((root / "views").glob("*/*/views.json"))[0]
    saved = broken.read_bytes()
    manifest = json.loads(saved)
    manifest["views"] = "not a list"  # planning reads only the key: just this object's shard trips on it
    broken.write_text(json.dumps(manifest))
    result = mvcap("launch", str(pipeline))
    assert result.returncode == 1
    out = result.stdout
    assert "render: 2 of 2 shard(s) done (before this launch)" in out
    assert "caption shard" in out and "failed with bad input or settings (exit 2)" in out
    assert "later stages were not submitted" in out
    assert not (root / "export").exists() and not (root / "launch" / "markers" / "export").exists()
    failed = [m for m in markers(root, "caption").values() if m["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["exit_code"] == 2 and str(broken.parent.name) in failed[0]["line"]
    status = mvcap("status", str(root))
    assert "caption: 1/2 done" in status.stdout and "1 failed" in status.stdout
    assert "export: 0/1 done" not in status.stdout  # never submitted: not part of this launch's state yet

    broken.write_bytes(saved)  # the user fixes the input and relaunches: only the failed shard runs
    fixed = mvcap("launch", str(pipeline))
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "caption: submitted 1 of 2 shard(s)" in fixed.stdout
    assert all(m["status"] == "done" for m in markers(root, "caption").values())
    assert not list((root / "launch" / "markers" / "caption").glob("*/*.failed.json"))


def test_a_shard_past_its_deadline_is_stopped_and_reported(tmp_path):
    root = tmp_path / "root"
    runner = {
        "kind": "local",
        "stages": {"render": {"shards": 1, "time_min": 0.02}},
    }  # 1.2 s: Blender alone takes longer
    pipeline = demo_pipeline(tmp_path / "p.yaml", root, runner, slow=True)
    result = mvcap("launch", str(pipeline))
    assert result.returncode == 1
    assert "render shard 0/1 ended without finishing: past its deadline" in result.stdout
    assert not (root / "launch" / "markers" / "render").exists() or not list(
        (root / "launch" / "markers" / "render").glob("*/*.json")
    )


def test_runner_config_errors_are_one_line(tmp_path):
    root = tmp_path / "root"
    cases = [
        ({"kind": "local", "stages": {"rendr": {"shards": 2}}}, "unknown stage"),
        ({"kind": "local", "stages": {"export": {"shards": 2}}}, "runs as one shard"),
        ({"kind": "pbs"}, "runner.kind"),
        ({"kind": "local", "stages": {"render": {"python": str(tmp_path / "nope" / "python")}}}, "does not exist"),
    ]
    for runner, expected in cases:
        pipeline = demo_pipeline(tmp_path / "p.yaml", root, runner)
        result = mvcap("launch", str(pipeline))
        assert result.returncode == 2, (runner, result.stdout, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    vllm = demo_pipeline(
        tmp_path / "v.yaml", root, {"kind": "local"}, caption={"backend": {"kind": "vllm", "model": "x"}}
    )
    result = mvcap("launch", str(vllm), "--dry-run")
    assert result.returncode == 2 and "runner.stages.caption.python" in result.stderr
    assert not root.exists()


def test_run_shard_checks_its_arguments(tmp_path):
    pipeline = demo_pipeline(tmp_path / "p.yaml", tmp_path / "root", shards(render=3))
    wrong = mvcap("run-shard", str(pipeline), "--stage", "render", "--shard", "0", "--num-shards", "2")
    assert wrong.returncode == 2 and "split into 3 shards" in wrong.stderr
    missing = mvcap("run-shard", str(pipeline), "--stage", "extract")
    assert missing.returncode == 2 and "no `extract:` section" in missing.stderr
    shutil.rmtree(tmp_path / "root", ignore_errors=True)


def test_a_cluster_launch_without_shard_counts_sizes_them(tmp_path):
    root = tmp_path / "root"
    big = {
        "source": {"kind": "demo", "per_category": 200},
        "views": {"num_views": 24},
        "resolution": 512,
        "samples": 32,
        "workers": 4,
    }

    def sized(target_min: float) -> dict[str, int]:
        pipeline = demo_pipeline(
            tmp_path / "p.yaml", root, {"kind": "slurm", "target_shard_min": target_min}, render=big
        )
        result = mvcap("launch", str(pipeline), "--dry-run")
        assert result.returncode == 0, result.stdout + result.stderr
        counts = {}
        for line in result.stdout.splitlines():
            for stage in ("render", "caption"):
                if line.startswith(f"{stage}: ") and "shard(s): 2000 objects x" in line:
                    counts[stage] = int(line.split(": ")[1].split()[0])
        assert "runner.stages.render.shards" in result.stdout
        return counts

    long, short = sized(20), sized(5)
    assert set(long) == {"render", "caption"} and long["render"] >= 2
    assert 3.5 * long["render"] <= short["render"] <= 4 * long["render"] + 1  # a quarter as long: four times as many
    assert not root.exists()
