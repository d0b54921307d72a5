"""What every stage shares: fingerprints and `--redo stale` (with a kill in the middle), honest
exits and messages, progress lines in logs, run configs, and pipeline sections for every command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import assert_same_pixels, caption, load_export, pixels, render, tiny_render

from mvcap_build.dataset import DatasetRoot, read_views_manifest
from mvcap_build.dataset.fingerprint import Fingerprint, changed_fields
from mvcap_build.errors import StaleUnitsError

CATEGORIES = ["chair", "table", "stool", "mug", "bottle", "lamp"]


def mvcap(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mvcap_build", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def pipeline_file(path: Path, root: Path, num_views: int, **sections) -> Path:
    config = {
        "root": str(root),
        "render": tiny_render(
            source={"kind": "demo", "categories": CATEGORIES, "per_category": 1}, views={"num_views": num_views}
        ),
        "caption": {"backend": "template"},
        "export": {"name": "redo-test"},
        **sections,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def fingerprints(root: Path) -> dict[str, str]:
    return {m.key: m.fingerprint.digest for m in map(read_views_manifest, DatasetRoot(root).view_manifests())}


def test_fingerprint_names_what_changed():
    old = Fingerprint.of({"resolution": 64, "views": {"num_views": 4, "fov_deg": 40.0}})
    new = Fingerprint.of({"resolution": 32, "views": {"num_views": 4, "fov_deg": 40.0}})
    assert old.fields == {"resolution": 64, "views.num_views": 4, "views.fov_deg": 40.0}
    assert changed_fields(old, new) == ["resolution"] and changed_fields(old, old) == []
    assert (
        Fingerprint.of({"views": {"fov_deg": 40.0, "num_views": 4}, "resolution": 64}).digest == old.digest
    )  # order-free
    assert changed_fields(None, new) == ["(no fingerprint recorded)"]


def test_changed_render_settings_stop_before_any_work(captioned_root, copy_of):
    root = DatasetRoot(copy_of(captioned_root))
    before = {p: p.stat().st_mtime_ns for p in (root.path / "views").rglob("*") if p.is_file()}
    runs_before = root.run_configs("render")
    for change, field in (({"resolution": 24}, "resolution"), ({"views": {"num_views": 3}}, "views.num_views")):
        with pytest.raises(StaleUnitsError) as stopped:
            render(root, tiny_render(**change))
        message = str(stopped.value)
        assert "3 of 3 objects" in message and field in message and "--redo stale" in message
    assert {p: p.stat().st_mtime_ns for p in (root.path / "views").rglob("*") if p.is_file()} == before
    assert root.run_configs("render") == runs_before  # a run that never started leaves no run config
    # Settings that do not shape pixels (device, workers, timeouts) keep the units.
    assert render(root, tiny_render(workers=2, timeout_s=300)).already_done == 3


def test_manifests_written_before_fingerprints_are_stale(captioned_root, copy_of):
    """A schema-1 render manifest is still read (renderer -> producer) and reported as stale."""
    root = DatasetRoot(copy_of(captioned_root))
    path = root.view_manifest("demo/mug-000")
    data = json.loads(path.read_text())
    producer = data.pop("producer")
    producer.pop("kind")
    old = {
        **{k: v for k, v in data.items() if k != "fingerprint"},
        "schema_version": 1,
        "category": "mug",
        "renderer": producer,
    }
    path.write_text(json.dumps(old))
    assert read_views_manifest(path).producer.engine == "CYCLES"
    with pytest.raises(StaleUnitsError, match="no fingerprint recorded"):
        render(root, tiny_render())
    assert render(root, tiny_render(), redo="stale").redone == 1


def test_killed_redo_stale_resumes_to_the_same_root(tmp_path):
    """Views re-rendered with a new setting: stop, --redo stale killed midway, rerun; the result
    equals a root built with the new setting from the start, and nothing else was redone."""
    reference = tmp_path / "reference"
    assert mvcap("build", str(pipeline_file(tmp_path / "ref.yaml", reference, num_views=3)), "--quiet").returncode == 0

    root = tmp_path / "root"
    assert mvcap("build", str(pipeline_file(tmp_path / "old.yaml", root, num_views=2)), "--quiet").returncode == 0
    old_prints = fingerprints(root)
    new = pipeline_file(tmp_path / "new.yaml", root, num_views=3)
    refused = mvcap("build", str(new), "--quiet")
    assert refused.returncode == 2 and "views.num_views: 2 -> 3 (6 units)" in refused.stderr

    process = subprocess.Popen(
        [sys.executable, "-m", "mvcap_build", "build", str(new), "--redo", "stale", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if sum(d != old_prints[k] for k, d in fingerprints(root).items()) >= 2:
            break
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    redone_at_kill = sum(d != old_prints[k] for k, d in fingerprints(root).items())
    assert 2 <= redone_at_kill < len(CATEGORIES), "the kill must land during the re-render"

    result = mvcap("build", str(new), "--redo", "stale", "--quiet")
    assert result.returncode == 0, result.stderr
    stale_left = len(CATEGORIES) - redone_at_kill
    assert f"render: {stale_left} rendered ({stale_left} stale redone), {redone_at_kill} already done" in result.stdout
    assert f"caption: {len(CATEGORIES)} captioned ({len(CATEGORIES)} stale redone)" in result.stdout

    assert fingerprints(root) == fingerprints(reference)
    ref_meta = json.loads((reference / "export" / "metadata" / "metadata_00000.json").read_text())
    new_meta = json.loads((root / "export" / "metadata" / "metadata_00000.json").read_text())
    assert new_meta == ref_meta and len(new_meta) == len(CATEGORIES) * 3
    for row in ref_meta:
        assert_same_pixels(pixels(reference / row["path"]), pixels(root / row["path"]), row["path"])
    assert len(load_export(root / "export")) == len(new_meta)
    leftovers = [p for p in root.rglob(".tmp-*")]
    assert leftovers == [] and len(list((root / "views").glob("*/*/*.png"))) == len(CATEGORIES) * 3


def test_a_root_that_is_a_file_is_a_clear_error(tmp_path):
    file = tmp_path / "a-file"
    file.write_text("not a folder")
    for args in (
        ["render", str(file)],
        ["caption", str(file)],
        ["export", str(file)],
        ["status", str(file)],
        ["render", str(file / "below")],
    ):
        result = mvcap(*args, "--quiet") if args[0] != "status" else mvcap(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and "a-file" in result.stderr, (args, result.stderr)
        assert "is a file" in result.stderr or "cannot create" in result.stderr, (args, result.stderr)
    # A folder nobody may create (sysfs refuses new top-level entries, even to root).
    result = mvcap("render", "/sys/mvcap-test-root", "--quiet")
    assert result.returncode == 2 and "cannot create dataset root /sys/mvcap-test-root" in result.stderr
    assert "Traceback" not in result.stderr
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump({"root": str(file), "caption": {"backend": "template"}}))
    result = mvcap("build", str(pipeline))
    assert result.returncode == 2 and "is a file" in result.stderr and "Traceback" not in result.stderr


def test_render_exits_non_zero_when_every_object_failed(tmp_path, meshes_dir):
    folder = tmp_path / "meshes"
    folder.mkdir()
    (folder / "empty.stl").write_bytes((meshes_dir / "empty.stl").read_bytes())
    (folder / "categories.csv").write_text("file,category\nempty.stl,nothing\nmissing.obj,ghost\n")
    root = tmp_path / "root"
    result = mvcap(
        "render",
        str(root),
        "--folder",
        str(folder),
        "--resolution",
        "32",
        "--samples",
        "2",
        "--device",
        "cpu",
        "--num-views",
        "2",
        "--quiet",
    )
    assert result.returncode == 1, result.stderr
    assert "0 rendered" in result.stdout and "2 failed" in result.stdout
    assert (
        "every one of the 2 objects it tried failed" in result.stderr
        and str(root / "failures" / "render") in result.stderr
    )
    # Nothing left to try (both in the ledger): not a failure of this run.
    assert (
        mvcap(
            "render",
            str(root),
            "--folder",
            str(folder),
            "--resolution",
            "32",
            "--samples",
            "2",
            "--device",
            "cpu",
            "--num-views",
            "2",
            "--quiet",
        ).returncode
        == 0
    )


def test_invalid_config_leaves_no_run_config(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    result = mvcap("render", str(root), "--resolution", "-3")
    assert result.returncode == 2 and "resolution" in result.stderr
    result = mvcap("caption", str(root), "--prompt", "no-such-prompt", "--quiet")
    assert result.returncode == 2 and "no-such-prompt" in result.stderr
    assert not (root / "runs").exists()


def test_our_own_bugs_keep_their_traceback(tmp_path):
    """A ValueError that is not a known user error is a bug: the traceback stays."""
    root = tmp_path / "root"
    (root / "objects").mkdir(parents=True)
    (root / "views" / "demo" / "x").mkdir(parents=True)
    (root / "views" / "demo" / "x" / "views.json").write_text("[1, 2]")  # a manifest that is not an object
    result = mvcap("caption", str(root), "--quiet")
    assert result.returncode == 2 and "not a valid ViewsManifest" in result.stderr  # a known error: one line
    code = "from mvcap_build.cli.common import user_errors\nwith user_errors():\n    raise ValueError('bug in mvcap')"
    crashed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert crashed.returncode == 1 and "Traceback" in crashed.stderr and "bug in mvcap" in crashed.stderr


def test_progress_lines_when_output_is_not_a_terminal(tmp_path):
    result = mvcap(
        "render",
        str(tmp_path / "root"),
        "--source",
        "demo",
        "--per-category",
        "1",
        "--num-views",
        "1",
        "--resolution",
        "16",
        "--samples",
        "1",
        "--device",
        "cpu",
        env={"MVCAP_PROGRESS_INTERVAL": "0"},
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "render progress:" in line]
    assert len(lines) >= 10 and "3 done, 0 failed of 10," in "\n".join(lines)
    assert "/s, elapsed" in lines[-1] and "ETA" in lines[-1]
    assert "render finished: 10 done, 0 failed of 10," in result.stderr
    assert "render: 10 rendered" in result.stdout
    quiet = mvcap(
        "render",
        str(tmp_path / "root"),
        "--source",
        "demo",
        "--per-category",
        "1",
        "--num-views",
        "1",
        "--resolution",
        "16",
        "--samples",
        "1",
        "--device",
        "cpu",
        "--quiet",
    )
    assert "progress" not in quiet.stderr and "10 already done" in quiet.stdout


def test_progress_lines_count_failures_apart_from_the_done():
    """3 units tried, 2 of them failed: "1 done, 2 failed of 3", never "3/3 done, 2 failed"."""
    import io

    from mvcap_build.progress import progress

    stream = io.StringIO()
    with progress("caption", total=3, stream=stream) as bar:
        bar.advance()
        bar.advance(failed=True)
        bar.advance(failed=True)
    final = stream.getvalue().splitlines()[-1]
    assert "caption finished: 1 done, 2 failed of 3," in final and "3/3" not in final


def test_train_ovt_reads_its_section_of_a_pipeline_file(captioned_root, copy_of, tmp_path):
    root = copy_of(captioned_root)
    assert mvcap("export", str(root), "--quiet").returncode == 0
    pipeline = tmp_path / "pipeline.yaml"
    train = {
        "clip_model": "tiny-random",
        "objects_per_batch": 2,
        "views_per_object": 2,
        "hard_views": 1,
        "max_steps": 2,
        "save_every": 2,
        "num_workers": 0,
        "viformer_heads": 4,
    }
    pipeline.write_text(yaml.safe_dump({"root": str(root), "train_ovt": train}))
    result = mvcap("train-ovt", str(root), "--config", str(pipeline))
    assert result.returncode == 0, result.stderr
    assert "train_ovt: checkpoint at" in result.stdout
    saved = json.loads((root / "train" / "ovt" / "config.json").read_text())
    assert saved["max_steps"] == 2 and saved["objects_per_batch"] == 2
    pipeline.write_text(yaml.safe_dump({"root": str(root), "train_ovt": {**train, "hard_views": 5}}))
    result = mvcap("train-ovt", str(root), "--config", str(pipeline))
    assert result.returncode == 2 and "hard_views" in result.stderr
    assert "Traceback" not in result.stderr and "pydantic" not in result.stderr


def test_status_shows_stale_captions_after_a_rerender(captioned_root, copy_of):
    root = copy_of(captioned_root)
    fresh = mvcap("status", str(root))
    assert fresh.returncode == 0, fresh.stderr
    rows = {line.split()[1]: line.split("│") for line in fresh.stdout.splitlines() if line.startswith("│")}
    assert rows["render"][5].strip() == "0" and rows["caption"][5].strip() == "0"
    render(root, tiny_render(samples=8), redo="stale")
    stale = mvcap("status", str(root))
    rows = {line.split()[1]: line.split("│") for line in stale.stdout.splitlines() if line.startswith("│")}
    assert rows["render"][5].strip() == "0" and rows["caption"][5].strip() == "3"
    assert "--redo stale" in stale.stdout
    caption(root, redo="stale")
    rows = {
        line.split()[1]: line.split("│")
        for line in mvcap("status", str(root)).stdout.splitlines()
        if line.startswith("│")
    }
    assert rows["caption"][5].strip() == "0"


def test_a_corrupt_committed_manifest_is_redone_not_a_traceback(captioned_root, copy_of):
    """A truncated views.json or caption manifest is not a committed unit: the rerun redoes that
    unit alone, says so, and the root ends as it was."""
    root = copy_of(captioned_root)
    views = sorted((root / "views").glob("*/*/views.json"))
    broken, before = views[0], views[0].read_bytes()
    first_view = sorted(broken.parent.glob("*.png"))[0]
    reference_pixels = pixels(first_view)
    broken.write_text("{bad")
    summary = render(root, tiny_render())
    assert summary.done == 1 and summary.already_done == len(views) - 1, summary
    assert any("could not be read" in note and "redone" in note for note in summary.notes), summary.notes
    assert read_views_manifest(broken).key == json.loads(before)["key"]
    assert_same_pixels(reference_pixels, pixels(first_view), "re-rendered view")

    captions = sorted((root / "captions").rglob("*.json"))
    good = captions[0].read_bytes()
    captions[0].write_bytes(good[: len(good) // 2])
    again = caption(root)
    assert again.done == 1 and again.already_done == len(captions) - 1, again
    assert captions[0].read_bytes() == good


def test_an_export_cleans_up_what_killed_exports_left(captioned_root, copy_of):
    from conftest import export

    from mvcap_build.dataset.atomic import make_staging_dir

    root = copy_of(captioned_root)
    leftovers = [make_staging_dir(root / "export") for _ in range(3)]  # what a kill before the swap leaves
    (leftovers[0] / "half.parquet").write_bytes(b"PAR1")
    export(root, name="cleanup")
    assert [p.name for p in root.iterdir() if p.name.startswith(".tmp-")] == []
    assert (root / "export" / "export.json").is_file()


def test_every_run_config_records_what_made_it(captioned_root, copy_of):
    """runs/*.yaml: mvcap's version and commit, Python and the library versions beside the settings."""
    from importlib import metadata

    root = copy_of(captioned_root)
    assert mvcap("caption", str(root), "--redo", "stale", "--quiet").returncode == 0
    assert mvcap("export", str(root), "--quiet").returncode == 0
    for stage in ("caption", "export"):
        document = yaml.safe_load(DatasetRoot(root).run_configs(stage)[-1].read_text())
        made_by = document["provenance"]
        assert made_by["mvcap_version"] == metadata.version("mvcap-build")
        assert made_by["python"] == sys.version.split()[0]
        for package in ("pydantic", "numpy", "pyarrow", "datasets", "torch"):
            assert made_by["packages"][package] == metadata.version(package), package
        repo = Path(__file__).resolve().parent.parent
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        assert made_by["git"]["commit"] == head and isinstance(made_by["git"]["dirty"], bool)
