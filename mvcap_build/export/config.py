"""Settings of the export stage."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

LICENSE_FILE = "LICENSE.md"  # written beside the card when the card links to it
LICENSE_NAME = "per-object-licences"  # the card's licence name when the licence is `other`


class TrainingImagesConfig(BaseModel):
    """Shards whose images are already resized and re-encoded for training (`--image-size`).

    A 512 px PNG costs ~6 ms of one core to decode and resize; a 224 px JPEG ~0.1 ms, so a
    trainer reading originals is decode-bound before the GPU is busy.
    """

    model_config = ConfigDict(extra="forbid")

    size: int = Field(224, ge=8)  # the shorter side, in pixels (aspect kept; never upscaled)
    format: Literal["jpeg", "webp", "png"] = "jpeg"  # jpeg puts RGBA renders on white, as the trainer does
    quality: int = Field(90, ge=1, le=100)  # JPEG/WebP quality (PNG is lossless)
    # beside: data/ keeps the originals and data-<size>px-<format>/ holds these (a second card
    # config); instead: data/ holds only these.
    originals: Literal["beside", "instead"] = "beside"
    workers: int | None = Field(None, ge=1)  # encoding processes; default: every core

    @property
    def name(self) -> str:
        return f"{self.size}px-{self.format}"


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "mvcap-dataset"  # dataset name on the card
    # Object-level splits: fractions by split name, drawn per object from a hash of its key.
    splits: dict[str, float] = Field(default_factory=lambda: {"train": 1.0})
    # True: the fractions are taken within each category, so every split holds its share of every
    # category (for small exports, where a hash split can leave a split with one object of a
    # category); objects may change split when others are added.
    stratify_splits: bool = False
    max_shard_bytes: int = Field(500_000_000, ge=1)  # a shard rolls when its images reach this (the Hub's ~500 MB)
    rows_per_parquet: int | None = Field(None, ge=1)  # and, if set, at this many views
    row_group_rows: int = Field(100, ge=1)  # rows per Parquet row group: small enough for the Hub viewer
    rows_per_metadata: int = Field(100_000, ge=1)  # rows per metadata_NNNNN.json shard
    img_id_stride: int = Field(100, ge=1)  # img_id = obj_id * stride + view index (MVCap uses 100)
    # The card's licence: a Hub licence id (https://hf.co/docs/hub/repositories-licenses); set it to
    # your assets' licence. `other` (the default, since objects usually keep licences of their own)
    # goes with a name and a link, as the Hub asks. The default link, LICENSE.md, is written by the
    # export beside the card (each object's licence and who to credit); a URL or another file of the
    # dataset repo can take its place.
    license: str = Field("other", pattern=r"^[a-z0-9][a-z0-9.+-]*$")
    license_name: str = Field(LICENSE_NAME, pattern=r"^[a-z0-9][a-z0-9._-]*$")  # only with `other`
    license_link: str = Field(LICENSE_FILE, min_length=1)  # only with `other`
    # Also write MVCap's released layout (export/mvcap/: images/ + one metadata.json of path,
    # caption, obj_id, img_id), so the original OVT code trains on the export unchanged.
    mvcap_layout: bool = False
    training_images: TrainingImagesConfig | None = None  # also (or only) write training-ready shards
    # Captions from several backends, models or prompts in one dataset are refused unless allowed.
    allow_mixed_captions: bool = False

    @field_validator("splits")
    @classmethod
    def _fractions(cls, splits: dict[str, float]) -> dict[str, float]:
        if not splits or any(f < 0 for f in splits.values()) or abs(sum(splits.values()) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be non-negative and add up to 1, got {splits}")
        if any(not name.replace("_", "").isalnum() for name in splits):
            raise ValueError(f"split names are letters, digits and underscores: {sorted(splits)}")
        return splits


class HubConfig(BaseModel):
    """Where and how `mvcap export --hf-push` uploads the export (the `hub:` section)."""

    model_config = ConfigDict(extra="forbid")

    repo_id: str | None = None  # OWNER/NAME of the dataset repo; None: no push
    private: bool = False  # only when the repo is created; an existing repo keeps its visibility
    revision: str = "main"  # the branch pushed to, created from main if missing
    # Each commit holds at most this many files and bytes: a failure loses at most one commit's
    # work, and the Hub's advice is to keep commits to a few dozen large files.
    max_files_per_commit: int = Field(50, ge=1)
    max_bytes_per_commit: int = Field(5_000_000_000, ge=1)
    # The Hub's limits, checked before anything is uploaded.
    max_files_per_folder: int = Field(10_000, ge=1)
    max_files: int = Field(100_000, ge=1)

    @field_validator("repo_id")
    @classmethod
    def _owner_name(cls, repo_id: str | None) -> str | None:
        if repo_id is not None and (repo_id.count("/") != 1 or not all(repo_id.split("/"))):
            raise ValueError(f"a Hub repo is OWNER/NAME, got {repo_id!r}")
        return repo_id
