"""Looking into a root and trying a subset: `mvcap failures`, `--limit` / `--keys` on the object
stages, and `mvcap config show`. Real renders of a folder with a corrupt and an empty mesh."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from typer.testing import CliRunner

from mvcap_build.cli import app
from mvcap_build.dataset import DatasetRoot, FailureLedger
from mvcap_build.dataset.keys import in_shard

TINY = ["--num-views", "2", "--resolution", "32", "--samples", "4", "--device", "cpu", "--workers", "1", "--quiet"]
GOOD = ["local/cubevc.glb", "local/nested.glb"]
FAILED = {"local/x.glb": "import_failed", "local/empty_nodes.glb": "no_geometry"}


def mvcap(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def render(root: Path, folder: Path, *flags: str):
    return mvcap("render", root, "--folder", folder, *TINY, *flags)


def rendered(root: Path) -> set[str]:
    return {path.parent.relative_to(root / "views").as_posix() for path in DatasetRoot(root).view_manifests()}


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def mesh_folder(tmp_path_factory, meshes_dir) -> Path:
    """Two meshes that render, one with no geometry, one of garbage bytes."""
    folder = tmp_path_factory.mktemp("meshes")
    for name in ("cubevc.glb", "nested.glb", "empty_nodes.glb"):
        shutil.copy(meshes_dir / name, folder / name)
    (folder / "x.glb").write_bytes(b"\x93not a glTF at all\x00\xff" * 40)
    (folder / "categories.csv").write_text(
        "file,category\ncubevc.glb,cube\nnested.glb,block\nempty_nodes.glb,nothing\nx.glb,box\n"
    )
    return folder


@pytest.fixture(scope="module")
def failed_root(tmp_path_factory, mesh_folder) -> Path:
    """Every object rendered or ledgered, in two shards (two log folders)."""
    root = tmp_path_factory.mktemp("inspect") / "root"
    for shard in (0, 1):
        result = render(root, mesh_folder, "--shard", str(shard), "--num-shards", "2")
        assert result.exit_code in (0, 1), result.output  # a shard holding only broken files exits 1
    assert rendered(root) == set(GOOD)
    assert {e.key: e.reason for e in FailureLedger(DatasetRoot(root), "render")} == FAILED
    return root


def test_failures_lists_the_ledger_with_reasons_and_writes_nothing(failed_root):
    before = tree(failed_root)
    result = mvcap("failures", failed_root)
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[2].strip(): line for line in result.output.splitlines() if line.startswith("│")}
    assert set(rows) == set(FAILED)
    for key, reason in FAILED.items():
        assert reason in rows[key] and "render" in rows[key]
    assert (
        "render: 2 failed (" in result.output
        and "import_failed: 1" in result.output
        and "no_geometry: 1" in result.output
    )
    for key, args in (("local/x.glb", ()), (None, ("--reason", "no_geometry")), ("local/nope.glb", ())):
        mvcap("failures", failed_root, *([key] if key else []), *args)
    assert tree(failed_root) == before


def test_failures_reason_filters(failed_root):
    result = mvcap("failures", failed_root, "--reason", "no_geometry")
    assert result.exit_code == 0, result.output
    assert "local/empty_nodes.glb" in result.output and "local/x.glb" not in result.output
    assert "render: 1 failed (no_geometry: 1)" in result.output
    result = mvcap("failures", failed_root, "--reason", "timeout")
    assert result.exit_code == 0 and "local/" not in result.output
    assert "import_failed: 1" in result.output  # says which reasons there are


def test_failures_key_shows_the_entry_and_its_own_log_lines(failed_root):
    key = "local/x.glb"
    entry = FailureLedger(DatasetRoot(failed_root), "render").get(key)
    result = mvcap("failures", failed_root, key)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "import_failed" in out and entry.detail.splitlines()[0] in out and entry.fingerprint.digest in out
    # The worker's line for this object and what Blender printed just before it, from the log of
    # the shard that rendered it; nothing about the other objects.
    shard = next(s for s in (0, 1) if in_shard(key, s, 2))
    log = DatasetRoot(failed_root).logs("render", shard, 2) / "worker-0.log"
    lines = log.read_text().splitlines()
    mine = next(i for i, line in enumerate(lines) if line.startswith(f"[mvcap worker] {key}: "))
    assert lines[mine] in out
    assert not lines[mine - 1].startswith("[mvcap worker]") and lines[mine - 1] in out  # Blender's own output
    assert f"logs/render/shard-{shard:05d}-of-00002/worker-0.log" in out
    for other in [*GOOD, "local/empty_nodes.glb"]:
        assert f"[mvcap worker] {other}:" not in out
        assert f".tmp-{other.split('/')[1]}." not in out  # its "Saved: ..." lines
    assert "compute device" not in out


def test_failures_key_shows_every_attempt_within_the_line_budget(failed_root, copy_of, mesh_folder):
    root = copy_of(failed_root)
    key = "local/x.glb"
    result = render(root, mesh_folder, "--keys", key, "--retry-failed")  # a second attempt, in a one-shard log
    assert result.exit_code == 1 and "1 failed" in result.output, result.output
    out = mvcap("failures", root, key).output
    assert out.count(f"[mvcap worker] {key}: ") == 2
    assert "shard-00000-of-00001/worker-0.log" in out and "-of-00002/worker-0.log" in out
    out = mvcap("failures", root, key, "--lines", "1").output
    assert out.count(f"[mvcap worker] {key}: ") == 1 and "shard-00000-of-00001/worker-0.log" in out  # the latest


def test_failures_of_an_unknown_key_is_one_line(failed_root):
    for key in ("local/nope.glb", "local/cubevc.glb"):  # never failed / committed
        result = mvcap("failures", failed_root, key)
        assert result.exit_code == 2, result.output
        assert len(error_lines(result)) == 1 and key in error_lines(result)[0]
    result = mvcap("failures", failed_root.parent / "missing")
    assert result.exit_code == 2 and len(error_lines(result)) == 1


def test_limit_renders_the_first_objects_and_a_rerun_the_rest(tmp_path, mesh_folder):
    root = tmp_path / "root"
    result = render(root, mesh_folder, "--limit", "1")
    assert result.exit_code == 0, result.output
    assert rendered(root) == {"local/cubevc.glb"}  # the first key in order
    assert "1 rendered" in result.output and "1 of the 4 objects" in result.output
    assert not (root / "failures").exists()
    result = render(root, mesh_folder)
    assert result.exit_code == 0, result.output
    assert "1 rendered" in result.output and "1 already done" in result.output and "2 failed" in result.output
    assert rendered(root) == set(GOOD)


def test_keys_render_exactly_those_and_unknown_keys_stop(tmp_path, mesh_folder):
    root = tmp_path / "root"
    result = render(root, mesh_folder, "--keys", "local/nested.glb,local/nope.glb", "--keys", "local/gone.obj")
    assert result.exit_code == 2, result.output
    assert (
        len(error_lines(result)) == 1
        and "local/nope.glb" in error_lines(result)[0]
        and "local/gone.obj" in error_lines(result)[0]
    )
    assert "local/nested.glb" not in error_lines(result)[0].split("(not among")[0]
    assert rendered(root) == set() and not (root / "runs").exists()
    result = render(root, mesh_folder, "--keys", "local/nested.glb")
    assert result.exit_code == 0, result.output
    assert rendered(root) == {"local/nested.glb"}
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# the cube\nlocal/cubevc.glb\n\n")
    result = render(root, mesh_folder, "--keys-file", keys_file)
    assert result.exit_code == 0, result.output
    assert rendered(root) == set(GOOD) and not (root / "failures").exists()


def test_caption_takes_a_subset_too(failed_root, copy_of):
    """The subset is chosen in the shared flow: every object stage has it."""
    root = copy_of(failed_root)
    result = mvcap("caption", root, "--no-gates", "--quiet", "--limit", "1")
    assert result.exit_code == 0, result.output
    assert {p.relative_to(root / "captions").as_posix() for p in DatasetRoot(root).caption_manifests()} == {
        "local/cubevc.glb.json"
    }
    result = mvcap("caption", root, "--no-gates", "--quiet", "--keys", "local/x.glb")
    assert result.exit_code == 2 and "local/x.glb" in error_lines(result)[0]  # has no views: not a caption unit


def test_config_show_is_the_defaults_merged_with_the_file(tmp_path):
    from mvcap_build.config_io import load_yaml, section
    from mvcap_build.render.config import RenderConfig

    pipeline = REPO / "pipelines" / "demo.yaml"
    result = mvcap("config", "show", "render", "--config", pipeline)
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    file_section = section(load_yaml(pipeline), "render")
    assert shown == RenderConfig.model_validate(file_section).model_dump(mode="json")
    defaults = RenderConfig().model_dump(mode="json")
    assert file_section and all(shown[name] == value for name, value in defaults.items() if name not in file_section)
    assert all(
        shown[name][k] == v for name, part in file_section.items() if isinstance(part, dict) for k, v in part.items()
    )
    assert shown["resolution"] == file_section["resolution"] != defaults["resolution"]  # the file wins
    # A stage file (no `root:`) is that stage's settings alone; no file: the defaults.
    stage_file = tmp_path / "render.yaml"
    stage_file.write_text(yaml.safe_dump(file_section))
    assert yaml.safe_load(mvcap("config", "show", "render", "--config", stage_file).stdout) == shown
    assert yaml.safe_load(mvcap("config", "show", "render").stdout) == defaults


def test_config_show_of_an_unknown_stage_names_the_known_ones():
    result = mvcap("config", "show", "rendr")
    assert result.exit_code == 2
    assert len(error_lines(result)) == 1 and all(
        name in error_lines(result)[0] for name in ("render", "extract", "caption", "export")
    )
