"""The dataset card's metadata, read back the way the Hub client and `datasets` read it: a
licence the Hub accepts (`other` with a name and a link that resolves), the captions' language,
the size bucket, and tags that say whether the images are renders or photographs, from what
really made the views (renders, IM3D's pre-rendered views, MVImgNet's photos)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURES, caption, export

from mvcap_build.dataset import DatasetRoot
from mvcap_build.extract.config import ExtractConfig
from mvcap_build.extract.stage import ExtractStage
from mvcap_build.pipeline.stage import RunOptions


def _resource(name: str):
    """A vocabulary `datasets` ships for card metadata (datasets/utils/resources/)."""
    import datasets

    return json.loads((Path(datasets.__file__).parent / "utils" / "resources" / name).read_text())


def read_card(export_dir: Path):
    from huggingface_hub import DatasetCard

    return DatasetCard.load(export_dir / "README.md").data


def _extracted_and_captioned(root: Path, source: dict) -> DatasetRoot:
    config = ExtractConfig.model_validate(
        {"source": source, "frames": {"num_frames": 6, "min_frames": 4, "resolution": 48}}
    )
    root = DatasetRoot(root)
    assert ExtractStage(config, RunOptions(progress=False)).run(root.ensure_writable()).done == 1
    caption(root)
    return root


def test_card_metadata_is_what_the_hub_spec_asks(captioned_root, copy_of):
    from datasets.utils.metadata import MetadataConfigs

    root = DatasetRoot(copy_of(captioned_root))
    export(root, name="demo-set")
    card = read_card(root.export_dir)
    assert card.license == "other"
    assert card.license_name == "per-object-licences" and card.license_link == "LICENSE.md"
    licence = (root.export_dir / "LICENSE.md").read_text()  # the link resolves inside the repo
    assert "per-object-licences" in licence and "| none recorded | 3 |" in licence
    assert card.language == ["en"] and set(card.language) <= set(_resource("languages.json"))
    assert card.size_categories == ["n<1K"] and set(card.size_categories) <= set(_resource("size_categories.json"))
    assert set(card.annotations_creators) <= set(_resource("creators.json")["annotations"])
    assert card.task_categories == ["image-to-text", "zero-shot-image-classification"]
    assert card.pretty_name == "demo-set"
    assert {"synthetic", "3d-rendering", "multi-view"} <= set(card.tags)  # Blender renders
    assert not {"real-world", "photos"} & set(card.tags)
    configs = MetadataConfigs.from_dataset_card_data(card)  # what `datasets.load_dataset` follows
    assert configs["default"]["data_files"] == [{"split": "train", "path": "data/train-*.parquet"}]


def test_card_licence_comes_from_the_export_config(captioned_root, copy_of):
    root = DatasetRoot(copy_of(captioned_root))
    export(root, license="cc0-1.0")
    card = read_card(root.export_dir)
    assert card.license == "cc0-1.0" and card.get("license_name") is None and card.get("license_link") is None
    assert not (root.export_dir / "LICENSE.md").exists()  # nothing links to it
    export(root, license_name="objaverse-mixed", license_link="https://example.org/terms")
    card = read_card(root.export_dir)
    assert (card.license, card.license_name, card.license_link) == (
        "other",
        "objaverse-mixed",
        "https://example.org/terms",
    )
    assert not (root.export_dir / "LICENSE.md").exists()


def test_size_categories_follow_the_hub_buckets():
    from mvcap_build.export.card import size_category

    buckets = _resource("size_categories.json")
    for rows, expected in [
        (0, "n<1K"),
        (999, "n<1K"),
        (1000, "1K<n<10K"),
        (12_345, "10K<n<100K"),
        (4_600_000, "1M<n<10M"),
        (10**12, "n>1T"),
    ]:
        assert size_category(rows) == expected and expected in buckets


def test_real_photos_are_not_tagged_synthetic(tmp_path):
    """MVImgNet's views are photographs of a real object: no `synthetic` tag."""
    root = _extracted_and_captioned(tmp_path / "root", {"kind": "mvimgnet", "folder": str(FIXTURES / "mvimgnet")})
    export(root)
    tags = set(read_card(root.export_dir).tags)
    assert {"real-world", "photos", "multi-view"} <= tags
    assert "synthetic" not in tags and "3d-rendering" not in tags


@pytest.mark.parametrize("kind", ["im3d", "nerf"])
def test_pre_rendered_captures_are_tagged_synthetic(tmp_path, kind):
    """IM3D and NeRF-synthetic folders are renders of 3D models, though they come through extract."""
    root = _extracted_and_captioned(tmp_path / "root", {"kind": kind, "folder": str(FIXTURES / "im3d")})
    export(root)
    tags = set(read_card(root.export_dir).tags)
    assert {"synthetic", "3d-rendering"} <= tags and "real-world" not in tags
