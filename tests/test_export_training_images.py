"""Training-ready shards: views resized and re-encoded once at export, read by the trainer, cached
so a re-export encodes only what changed; and the card's provenance (gates, failures, citation)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import export
from PIL import Image

from mvcap_build.dataset import DatasetRoot, FailureLedger
from mvcap_build.export.image_sets import shard_folder
from mvcap_build.imaging import composite_on_white
from mvcap_build.train.data import ExportData

TRAINING = {"size": 16, "format": "jpeg", "quality": 85}


def _load(files: list[str]):
    import tempfile

    import datasets

    return datasets.load_dataset(
        "parquet", data_files=files, split="train", cache_dir=tempfile.mkdtemp(prefix="hf-"), keep_in_memory=True
    )


@pytest.fixture(scope="module")
def beside(captioned_root, tmp_path_factory):
    import shutil

    root = tmp_path_factory.mktemp("training") / "root"
    shutil.copytree(captioned_root, root)
    export(root, training_images=TRAINING)
    return DatasetRoot(root)


def test_training_ready_shards_beside_the_originals(beside):
    import datasets

    export_dir = beside.export_dir
    originals = _load([str(p) for p in sorted((export_dir / "data").glob("*.parquet"))])
    ready = _load([str(p) for p in sorted((export_dir / "data-16px-jpeg").glob("*.parquet"))])
    assert len(ready) == len(originals) == 12
    assert isinstance(ready.features["image"], datasets.Image)
    for original, small in zip(
        originals.cast_column("image", datasets.Image(decode=False)),
        ready.cast_column("image", datasets.Image(decode=False)),
        strict=True,
    ):
        assert (original["key"], original["view_index"]) == (small["key"], small["view_index"])
        assert original["image"]["bytes"] == (beside.path / original["path"]).read_bytes()
        with Image.open(io.BytesIO(small["image"]["bytes"])) as image:
            assert image.format == "JPEG" and image.mode == "RGB" and min(image.size) == 16
            got = np.asarray(image, dtype=np.int16)
        with Image.open(beside.path / original["path"]) as source:
            expected = np.asarray(composite_on_white(source).resize(image.size, Image.BICUBIC), dtype=np.int16)
        assert np.abs(got - expected).mean() < 8  # the same picture, on white (JPEG noise aside)
        assert small["image"]["path"].endswith(".jpg")
    card = (export_dir / "README.md").read_text()
    assert "config_name: 16px-jpeg" in card and "path: data-16px-jpeg/train-*.parquet" in card
    assert "shorter side 16 px, JPEG, quality 85" in card
    sets = json.loads((export_dir / "export.json").read_text())["image_sets"]
    assert sets["data"]["images"] == "original files" and sets["data-16px-jpeg"]["format"] == "jpeg"


def test_the_trainer_reads_the_training_ready_shards_by_default(beside):
    assert shard_folder(beside.export_dir) == "data-16px-jpeg"
    assert shard_folder(beside.export_dir, "original") == "data"
    data = ExportData.open(beside.export_dir)
    first = data.dataset[0]["image"]
    assert data.load_image(first).format == "JPEG" and data.num_objects == 3
    assert data.load_image(ExportData.open(beside.export_dir, "original").dataset[0]["image"]).format == "PNG"


def test_re_export_reuses_the_cache_and_re_encodes_a_changed_view(beside, copy_of):
    root = DatasetRoot(copy_of(beside.path))
    cache = root.path / "cache" / "training-images" / "16px-jpeg-q85"
    cached = {p: p.stat().st_mtime_ns for p in cache.rglob("*.jpg")}
    assert len(cached) == 12
    before = {p.relative_to(root.export_dir): p.read_bytes() for p in root.export_dir.rglob("*.parquet")}
    export(root, training_images=TRAINING)
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.jpg")} == cached  # nothing re-encoded
    assert {p.relative_to(root.export_dir): p.read_bytes() for p in root.export_dir.rglob("*.parquet")} == before

    view = next(root.view_dir("demo/car-000").glob("*.png"))
    with Image.open(view) as image:
        Image.new("RGBA", image.size, (255, 0, 0, 255)).save(view)  # a re-rendered view: new pixels, new mtime
    os.utime(view, ns=(view.stat().st_atime_ns, view.stat().st_mtime_ns + 10**9))
    export(root, training_images=TRAINING)
    changed = [p for p, t in cached.items() if p.stat().st_mtime_ns != t]
    assert [p.name for p in changed] == [view.name + ".jpg"]
    with Image.open(changed[0]) as image:
        assert np.asarray(image)[..., 0].mean() > 240 and np.asarray(image)[..., 1].mean() < 15  # red now


def test_instead_of_the_originals_and_webp(captioned_root, copy_of):
    root = DatasetRoot(copy_of(captioned_root))
    export(root, training_images={"size": 20, "format": "webp", "originals": "instead"})
    assert sorted(p.name for p in root.export_dir.iterdir() if p.name.startswith("data")) == ["data"]
    table = pq.read_table(next((root.export_dir / "data").glob("*.parquet")))
    with Image.open(io.BytesIO(table.column("image")[0].as_py()["bytes"])) as image:
        assert image.format == "WEBP" and min(image.size) == 20 and image.mode == "RGBA"  # WebP keeps alpha
    assert shard_folder(root.export_dir) == "data"
    with pytest.raises(ValueError, match="only training-ready shards"):
        shard_folder(root.export_dir, "original")


def test_card_reports_gates_failures_and_cites_ovt(captioned_root, copy_of):
    root = DatasetRoot(copy_of(captioned_root))
    FailureLedger(root, "render").record("demo/broken-000", "import_failed", "not a mesh")
    FailureLedger(root, "caption").record("demo/other-000", "gates_failed", "no caption named the category")
    export(root)
    card = (root.export_dir / "README.md").read_text()
    assert "12 of 12 captions passed the quality gates at the first try" in card
    assert "left out after render failed: 1 objects (import_failed 1)" in card
    assert "left out after caption failed: 1 objects (gates_failed 1)" in card
    assert "Objects by source: demo 3." in card
    assert "@article{ruan2024omniview" in card and "Omniview-Tuning" in card


def test_cli_training_image_flags(captioned_root, copy_of):
    root = copy_of(captioned_root)
    cli = [sys.executable, "-m", "mvcap_build", "export", str(root), "--quiet"]
    lone = subprocess.run([*cli, "--image-format", "webp"], capture_output=True, text=True)
    assert lone.returncode == 2 and "need --image-size" in lone.stderr
    ok = subprocess.run(
        [*cli, "--image-size", "16", "--image-format", "png", "--no-originals"], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    sets = json.loads((root / "export" / "export.json").read_text())["image_sets"]
    assert sets == {"data": {"images": "training-ready", "shorter_side": 16, "format": "png"}}
