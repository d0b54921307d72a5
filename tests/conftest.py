"""Shared test fixtures: the real meshes and capture in ../shared/fixtures, tiny render settings
and one small rendered + captioned dataset root reused by several tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Two cores: torch's intra-op threads fight with Blender workers and each other; one is faster.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("MVCAP_FIXTURES", REPO.parent / "shared" / "fixtures"))
MESHES = FIXTURES / "meshes"


def tiny_render(**overrides) -> dict:
    """Render settings small enough for tests: 32 px, 4 Cycles samples, no denoiser."""
    config = {
        "source": {"kind": "demo", "categories": ["chair", "mug", "car"], "per_category": 1},
        "views": {"num_views": 4},
        "resolution": 32,
        "samples": 4,
        "denoise": False,
        "device": "cpu",
        "timeout_s": 120,
    }
    config.update(overrides)
    return config


def load_export(export_dir: Path):
    """`datasets.load_dataset` on an export folder, with a private cache: the shared cache can
    hand back an older export of another folder with the same file names."""
    import tempfile

    import datasets

    cache = tempfile.mkdtemp(prefix="hf-datasets-")
    try:
        return datasets.load_dataset(str(export_dir), split="train", cache_dir=cache, keep_in_memory=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="session")
def meshes_dir() -> Path:
    if not MESHES.is_dir():
        pytest.fail(f"test fixtures not found at {MESHES} (set MVCAP_FIXTURES)")
    return MESHES


@pytest.fixture(scope="session")
def captioned_root(tmp_path_factory) -> Path:
    """Three demo objects x 4 views, rendered and captioned with the template backend."""
    from mvcap_build.caption.config import CaptionConfig
    from mvcap_build.caption.stage import run_caption
    from mvcap_build.dataset import DatasetRoot
    from mvcap_build.render.config import RenderConfig
    from mvcap_build.render.stage import run_render

    root = DatasetRoot(tmp_path_factory.mktemp("captioned") / "root")
    summary = run_render(root, RenderConfig.model_validate(tiny_render()), show_progress=False)
    assert summary.rendered == 3, summary
    run_caption(root, CaptionConfig(), show_progress=False)
    return root.path


@pytest.fixture
def copy_of(tmp_path):
    """A private copy of a session-scoped root, for tests that write to it."""

    def _copy(path: Path) -> Path:
        target = tmp_path / path.name
        shutil.copytree(path, target)
        return target

    return _copy
