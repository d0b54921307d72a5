"""Faults a user or a cluster causes: a full disk, roots nobody can write, a layout folder that is a
file, two runs of the same shard at once. Each ends in one line (exit 2) or in shared work, never
in a traceback, and loses nothing that was committed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import tiny_render

from mvcap_build.dataset import DatasetRoot

CATEGORIES = ["chair", "table", "stool", "mug", "bottle", "lamp"]


def mvcap(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mvcap_build", *args], capture_output=True, text=True, **kwargs)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mvcap_build", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def render_config(path: Path, categories=CATEGORIES, **overrides) -> Path:
    settings = tiny_render(source={"kind": "demo", "categories": categories, "per_category": 1}, workers=1, **overrides)
    path.write_text(yaml.safe_dump(settings))
    return path


def committed(root: Path) -> dict[str, str]:
    """Key -> fingerprint digest of every committed object."""
    return {
        json.loads(m.read_text())["key"]: json.loads(m.read_text())["fingerprint"]["digest"]
        for m in DatasetRoot(root).view_manifests()
    }


def ledger(root: Path, stage: str) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / "failures" / stage).rglob("*.json"))


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".tmp-*"))


@pytest.fixture
def small_disk(tmp_path):
    """A real 24 MiB file system (tmpfs), so a full disk is a real ENOSPC."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave_bytes: int) -> Path:
    """Fill `disk` up to `leave_bytes` of free space with one file; return it."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(0, free - leave_bytes))
    return filler


def test_two_renders_of_one_shard_share_the_work(tmp_path):
    root, config = tmp_path / "root", render_config(tmp_path / "render.yaml")
    first, second = (start("render", str(root), "--config", str(config), "--quiet") for _ in range(2))
    outputs = [process.communicate(timeout=600) for process in (first, second)]
    for process, (out, err) in zip((first, second), outputs):
        assert process.returncode == 0 and "Traceback" not in err, err
        assert "0 failed" in out, out
    assert sorted(committed(root)) == sorted(f"demo/{c}-000" for c in CATEGORIES)
    assert ledger(root, "render") == [] and leftovers(root) == []
    lines = " ".join(out for out, _ in outputs)
    rendered = sum(int(out.split("render: ")[1].split(" rendered")[0]) for out, _ in outputs)
    assert rendered <= len(CATEGORIES) + 1, lines  # the work was split, not done twice (one may race the plan)
    # Each object was committed once, whole: the views on disk are exactly the manifest's.
    for manifest in DatasetRoot(root).view_manifests():
        files = {view["file"] for view in json.loads(manifest.read_text())["views"]}
        assert {p.name for p in manifest.parent.iterdir()} == files | {"views.json"}


def test_a_claim_is_exclusive_and_dies_with_its_process(tmp_path):
    from mvcap_build.dataset.claims import try_claim

    final = tmp_path / "views" / "demo" / "chair-000"
    held = try_claim(final)
    assert held is not None and try_claim(final) is None  # flock is per open file: even this process waits
    held.release()
    assert not held.path.exists()
    again = try_claim(final)
    assert again is not None
    again.release()
    # A process killed while holding a claim does not block the next run.
    code = (
        "import os, sys; from pathlib import Path; from mvcap_build.dataset.claims import try_claim; "
        f"c = try_claim(Path({str(final)!r})); print('held', flush=True); os.kill(os.getpid(), 9)"
    )
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert killed.returncode == -9 and "held" in killed.stdout
    after = try_claim(final)
    assert after is not None
    after.release()


def test_a_second_export_of_one_root_is_refused_while_the_first_runs(captioned_root, copy_of):
    from mvcap_build.dataset.claims import try_claim

    root = copy_of(captioned_root)
    with try_claim(DatasetRoot(root).export_dir):  # what a running export holds
        result = mvcap("export", str(root), "--quiet")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "another `mvcap export` is writing" in result.stderr
    assert not (root / "export").exists()
    assert mvcap("export", str(root), "--quiet").returncode == 0


def test_a_full_disk_stops_render_in_one_line_and_loses_nothing(small_disk, tmp_path):
    root = small_disk / "root"
    config = render_config(tmp_path / "render.yaml", categories=CATEGORIES[:2], resolution=64)
    assert mvcap("render", str(root), "--config", str(config), "--quiet").returncode == 0
    before = committed(root)
    filler = fill(small_disk, leave_bytes=40_000)  # room for a few views, not for four more objects
    more = render_config(tmp_path / "more.yaml", categories=CATEGORIES, resolution=64)
    result = mvcap("render", str(root), "--config", str(more), "--quiet")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "is full" in result.stderr and "rerun" in result.stderr, result.stderr
    after = committed(root)
    assert {k: v for k, v in after.items() if k in before} == before  # committed work survived
    assert ledger(root, "render") == []  # nothing blamed on the objects
    filler.unlink()
    resumed = mvcap("render", str(root), "--config", str(more), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(committed(root)) == sorted(f"demo/{c}-000" for c in CATEGORIES)
    assert leftovers(root) == []


def test_a_full_disk_in_caption_and_export_is_one_line(small_disk, captioned_root):
    uncaptioned, captioned = small_disk / "uncaptioned", small_disk / "captioned"
    shutil.copytree(captioned_root, uncaptioned)
    shutil.rmtree(uncaptioned / "captions")
    shutil.copytree(captioned_root, captioned)
    fill(small_disk, leave_bytes=0)
    for args in (
        ["caption", str(uncaptioned)],
        ["export", str(captioned)],
        ["export", str(captioned), "--image-size", "16"],
    ):
        result = mvcap(*args, "--quiet")
        assert result.returncode == 2 and "Traceback" not in result.stderr, (args, result.stderr)
        assert "No space left on device" in result.stderr or "is full" in result.stderr, (args, result.stderr)


@pytest.mark.parametrize("root", ["/sys/kernel", "/proc/sys"])
def test_roots_the_kernel_will_not_let_us_write_are_one_line(root):
    result = mvcap("render", root, "--quiet")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert root in result.stderr and ("cannot write" in result.stderr or "not writable" in result.stderr)


@pytest.mark.parametrize("folder", ["views", "captions", "failures", "runs"])
def test_a_layout_folder_that_is_a_file_is_one_line(tmp_path, folder):
    root = tmp_path / "root"
    root.mkdir()
    (root / folder).write_text("not a folder")
    for args in (
        ["render", str(root), "--config", str(render_config(tmp_path / "r.yaml"))],
        ["caption", str(root)],
        ["export", str(root)],
    ):
        result = mvcap(*args, "--quiet")
        assert result.returncode == 2 and "Traceback" not in result.stderr, (args, result.stderr)
        assert f"{root / folder} is a file" in result.stderr, (args, result.stderr)
    assert (root / folder).read_text() == "not a folder"
