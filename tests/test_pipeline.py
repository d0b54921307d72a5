"""`mvcap build` end to end, a kill in the middle of rendering, and config errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from conftest import assert_same_pixels, load_export, tiny_render

CATEGORIES = ["chair", "table", "stool", "mug", "bottle", "lamp", "car", "sofa"]


def write_pipeline(path: Path, root: Path, **sections) -> Path:
    config = {
        "root": str(root),
        "render": tiny_render(
            source={"kind": "demo", "categories": CATEGORIES, "per_category": 1}, views={"num_views": 6}
        ),
        "caption": {"backend": "template"},
        "export": {"name": "kill-test", "rows_per_parquet": 20},
        **sections,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def mvcap(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mvcap_build", *args], capture_output=True, text=True, **kwargs)


def committed(root: Path) -> int:
    return len(list((root / "views").glob("*/*/views.json")))


def export_contents(root: Path) -> tuple[list, list]:
    """metadata rows, and the decoded pixels of every view, in row order."""
    metadata = json.loads((root / "export" / "metadata" / "metadata_00000.json").read_text())
    table = load_export(root / "export")
    pixels = [np.asarray(image) for image in table["image"]]
    return metadata, pixels


def test_killed_build_resumes_to_the_same_dataset(tmp_path):
    reference = tmp_path / "reference"
    result = mvcap("build", str(write_pipeline(tmp_path / "a.yaml", reference)), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "Dataset ready at" in result.stdout

    killed = tmp_path / "killed"
    pipeline = write_pipeline(tmp_path / "b.yaml", killed)
    process = subprocess.Popen(
        [sys.executable, "-m", "mvcap_build", "build", str(pipeline), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while committed(killed) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_at_kill = committed(killed)
    assert 2 <= done_at_kill < len(CATEGORIES), "the kill must land during rendering"
    assert not (killed / "export").exists()

    result = mvcap("build", str(pipeline), "--quiet")
    assert result.returncode == 0, result.stderr
    assert f"{len(CATEGORIES) - done_at_kill} rendered, {done_at_kill} already done" in result.stdout

    ref_meta, ref_pixels = export_contents(reference)
    new_meta, new_pixels = export_contents(killed)
    assert new_meta == ref_meta
    assert len(new_meta) == len(CATEGORIES) * 6
    for index, (a, b) in enumerate(zip(ref_pixels, new_pixels, strict=True)):
        assert_same_pixels(np.asarray(a).astype(int), np.asarray(b).astype(int), f"row {index}")
    leftovers = [p for p in (killed / "views").rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []
    assert len(list((killed / "views").glob("*/*/*.png"))) == len(CATEGORIES) * 6


def test_bad_pipeline_key_is_named(tmp_path):
    pipeline = tmp_path / "bad.yaml"
    pipeline.write_text(yaml.safe_dump({"root": str(tmp_path / "r"), "render": {"views": {"num_veiws": 3}}}))
    result = mvcap("build", str(pipeline))
    assert result.returncode == 2
    assert "render.views.num_veiws: unknown key" in result.stderr
    assert not (tmp_path / "r").exists()


def test_bad_values_and_broken_yaml_are_clear_errors(tmp_path):
    pipeline = tmp_path / "bad.yaml"
    pipeline.write_text(
        yaml.safe_dump({"root": str(tmp_path / "r"), "render": {"resolution": -5}, "train_ovt": {"hard_views": 0}})
    )
    result = mvcap("build", str(pipeline))
    assert result.returncode == 2 and "render.resolution" in result.stderr
    pipeline.write_text("root: [unclosed\n")
    result = mvcap("build", str(pipeline))
    assert result.returncode == 2 and "not valid YAML" in result.stderr


def test_bad_train_section_fails_before_rendering(tmp_path):
    pipeline = tmp_path / "bad.yaml"
    pipeline.write_text(
        yaml.safe_dump({"root": str(tmp_path / "r"), "render": tiny_render(), "train_ovt": {"hard_views": 0}})
    )
    result = mvcap("build", str(pipeline))
    assert result.returncode == 2 and "hard_views" in result.stderr
    assert not (tmp_path / "r" / "views").exists()


def test_demo_pipeline_file_is_valid():
    from mvcap_build.config_io import load_yaml, validate
    from mvcap_build.pipeline.config import PipelineConfig
    from mvcap_build.registry import STAGES

    repo = Path(__file__).resolve().parent.parent
    for path in sorted((repo / "pipelines").glob("*.yaml")):
        validate(PipelineConfig, load_yaml(path), str(path))
    # A pipeline file has one section per registered stage, validated by that stage's config.
    assert [n for n in PipelineConfig.model_fields if n not in ("root", "runner")] == list(STAGES)
    for name, entry in STAGES.items():
        assert PipelineConfig.model_fields[name].annotation == entry.config | None
    demo = validate(PipelineConfig, load_yaml(repo / "pipelines" / "demo.yaml"), "demo")
    assert demo.render.views.num_views >= 12 and demo.render.source.per_category >= 3
    assert demo.caption and demo.export and demo.train_ovt


def test_stage_command_reads_its_section_of_a_pipeline_file(tmp_path):
    root = tmp_path / "root"
    pipeline = write_pipeline(tmp_path / "p.yaml", root)
    result = mvcap("render", str(root), "--config", str(pipeline), "--quiet", "--num-views", "2")
    assert result.returncode == 0, result.stderr
    assert f"{len(CATEGORIES)} rendered" in result.stdout
    views = json.loads(next((root / "views" / "demo").glob("*/views.json")).read_text())["views"]
    assert len(views) == 2 and views[0]["width"] == 32  # flag over file, file over defaults


def test_paths_in_a_file_are_relative_to_the_file_wherever_the_command_runs(tmp_path, meshes_dir):
    project = tmp_path / "project"
    (project / "meshes").mkdir(parents=True)
    for name in ("Duck.glb", "teapot.stl"):
        (project / "meshes" / name).write_bytes((meshes_dir / name).read_bytes())
    (project / "meshes" / "categories.csv").write_text("file,category\nDuck.glb,duck\nteapot.stl,teapot\n")
    (project / "pipelines").mkdir()
    render = tiny_render(source={"kind": "local", "folder": "../meshes", "categories_csv": "../meshes/categories.csv"})
    pipeline = project / "pipelines" / "p.yaml"
    pipeline.write_text(yaml.safe_dump({"root": "../data/root", "render": render, "caption": {"backend": "template"}}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = mvcap("build", str(pipeline), "--quiet", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert committed(project / "data" / "root") == 2 and not any(elsewhere.iterdir())
    # A stage file given with --config too; a flag stays relative to the current folder.
    stage_file = project / "pipelines" / "render.yaml"
    stage_file.write_text(yaml.safe_dump(render))
    result = mvcap("render", "here", "--config", str(stage_file), "--quiet", cwd=elsewhere)
    assert result.returncode == 0 and committed(elsewhere / "here") == 2, result.stderr
    result = mvcap("render", "there", "--config", str(stage_file), "--folder", "meshes", "--quiet", cwd=project)
    assert result.returncode == 0 and committed(project / "there") == 2, result.stderr


def test_the_pipeline_files_shipped_resolve_beside_themselves():
    from mvcap_build.pipeline.config import load_pipeline

    repo = Path(__file__).resolve().parent.parent
    assert load_pipeline(repo / "pipelines" / "demo.yaml").root == repo / "data" / "demo"
    local = load_pipeline(repo / "pipelines" / "local-fixtures.yaml")
    assert local.render.source.folder.resolve() == (repo.parent / "shared" / "fixtures" / "meshes").resolve()
