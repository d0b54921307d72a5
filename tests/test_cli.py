"""The command line starts fast, imports nothing heavy, and explains itself."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from typer.testing import CliRunner

from mvcap_build.cli import app

HEAVY = ("bpy", "torch", "vllm", "transformers", "datasets", "ray", "submitit")


def test_cli_import_does_not_load_heavy_modules():
    code = "import sys, json; import mvcap_build.cli; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in %r)))" % (HEAVY,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_help_is_fast_and_lists_every_stage():
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "mvcap_build", "--help"], capture_output=True, text=True)
        best = min(best, time.perf_counter() - start)
        assert result.returncode == 0, result.stderr
    for command in ("build", "render", "extract", "caption", "export", "train-ovt", "status", "preview", "caption-report", "eval"):
        assert command in result.stdout
    assert best < 1.0, f"mvcap --help took {best:.2f} s at best"


def test_each_command_has_help():
    runner = CliRunner()
    for command in ("build", "render", "extract", "caption", "export", "train-ovt", "status", "preview", "caption-report", "eval"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_status_of_missing_root_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["status", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no dataset root" in result.output


def test_status_reports_each_stage_and_failures(captioned_root, copy_of):
    from mvcap_build.dataset import DatasetRoot, FailureLedger

    root = copy_of(captioned_root)
    FailureLedger(DatasetRoot(root), "render").record("demo/lamp-000", "timeout", "no answer within 1 s")
    result = CliRunner().invoke(app, ["status", str(root)])
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│")}
    assert "3 (demo: 3)" in lines["objects"]
    assert "│ 3 " in lines["render"] and "12" in lines["render"] and "timeout: 1" in lines["render"]
    assert "12" in lines["caption"]
    assert "not exported yet" in lines["export"]
    assert "categories: car (1), chair (1), mug (1)" in result.output


def test_render_without_a_source_says_it_renders_the_demo(tmp_path):
    # shard 0 of 1000 holds none of the 30 demo objects: nothing renders, the message still shows
    result = subprocess.run([sys.executable, "-m", "mvcap_build", "render", str(tmp_path / "root"), "--shard", "0", "--num-shards", "1000"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "no --source given: rendering the embedded demo" in result.stderr
    quiet = subprocess.run([sys.executable, "-m", "mvcap_build", "render", str(tmp_path / "root2"), "--source", "demo",
                            "--shard", "0", "--num-shards", "1000"], capture_output=True, text=True)
    assert quiet.returncode == 0 and "no --source given" not in quiet.stderr
