"""Shared test fixtures: the real meshes and capture in ../shared/fixtures, tiny render settings
and one small rendered + captioned dataset root reused by several tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# The fake Objaverse Hub's fixtures (`data`, `hub`) for every test module that asks for them.
pytest_plugins = ["fake_objaverse"]

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


# Cycles on CPU is not bit-exact from run to run (measured: one value off by one level in 1 of
# 240 views at 64 px, with no kill involved), so two renders of the same scene are compared by
# pixels: at most this fraction of the RGBA values may differ, by at most this many levels.
PIXEL_TOLERANCE_FRACTION = 0.002
PIXEL_TOLERANCE_LEVELS = 4


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA")).astype(int)


def assert_same_pixels(a: np.ndarray, b: np.ndarray, what: str) -> None:
    difference = np.abs(a - b)
    assert difference.max() <= PIXEL_TOLERANCE_LEVELS, f"{what}: a value differs by {difference.max()} levels"
    assert (difference > 0).mean() <= PIXEL_TOLERANCE_FRACTION, (
        f"{what}: {(difference > 0).mean():.2%} of values differ"
    )


def render(root, settings, *, shard: int = 0, num_shards: int = 1, redo: str = "none", retry_failed: bool = False):
    """Run the render stage as the CLI does, without progress output; return its Summary."""
    from mvcap_build.dataset import DatasetRoot
    from mvcap_build.pipeline.stage import Redo, RunOptions
    from mvcap_build.render.config import RenderConfig
    from mvcap_build.render.stage import RenderStage

    config = settings if isinstance(settings, RenderConfig) else RenderConfig.model_validate(settings)
    options = RunOptions(redo=Redo(redo), retry_failed=retry_failed, progress=False)
    root = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    return RenderStage(config, options).run(root.ensure_writable(), shard, num_shards)


def caption(
    root,
    settings=None,
    *,
    backend=None,
    shard: int = 0,
    num_shards: int = 1,
    redo: str = "none",
    retry_failed: bool = False,
):
    """Run the caption stage (template backend unless `settings` say otherwise); return its Summary."""
    from mvcap_build.caption.config import CaptionConfig
    from mvcap_build.caption.stage import CaptionStage
    from mvcap_build.dataset import DatasetRoot
    from mvcap_build.pipeline.stage import Redo, RunOptions

    config = settings if isinstance(settings, CaptionConfig) else CaptionConfig.model_validate(settings or {})
    options = RunOptions(redo=Redo(redo), retry_failed=retry_failed, progress=False)
    root = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    return CaptionStage(config, options, backend=backend).run(root, shard, num_shards)


def export(root, **settings):
    """Run the export stage; return its Summary."""
    from mvcap_build.dataset import DatasetRoot
    from mvcap_build.export.config import ExportConfig
    from mvcap_build.export.stage import ExportStage
    from mvcap_build.pipeline.stage import RunOptions

    return ExportStage(ExportConfig(**settings), RunOptions(progress=False)).run(
        root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    )


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
    root = tmp_path_factory.mktemp("captioned") / "root"
    summary = render(root, tiny_render())
    assert summary.done == 3, summary
    caption(root)
    return root


@pytest.fixture
def copy_of(tmp_path):
    """A private copy of a session-scoped root, for tests that write to it."""

    def _copy(path: Path) -> Path:
        target = tmp_path / path.name
        shutil.copytree(path, target)
        return target

    return _copy
