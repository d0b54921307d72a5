"""Settings of the `objaverse` source: which Objaverse 1.0 objects, and how to download them.

Pydantic only, so that a YAML file validates before anything that downloads is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SELECTION_FIELDS = ("uids", "uids_file", "csv", "lvis_categories")
DEFAULT_CACHE_DIR = Path("~/.objaverse/hf-objaverse-v1")  # where `objaverse==0.1.7` keeps its files


class ObjaverseSourceConfig(BaseModel):
    """Objaverse 1.0 objects by uid, uid list, CSV `uid,category`, or LVIS category.

    Exactly one of `uids`, `uids_file`, `csv`, `lvis_categories` selects the objects. Files live
    in `cache_dir` with the Hub's relative paths, the layout the `objaverse` package uses, so
    files it downloaded before are reused without a request.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["objaverse"] = "objaverse"
    name: str = Field("objaverse", pattern=r"^[a-z0-9][a-z0-9_-]*$")  # source part of keys

    # Selection: exactly one of these four.
    uids: list[str] | None = None
    uids_file: Path | None = None  # one uid per line; blank lines and `#` comments skipped
    csv: Path | None = None  # header `uid,category`; an empty category falls back to LVIS
    lvis_categories: list[str] | Literal["all"] | None = None  # LVIS names (`coffee_table`) or "all"
    per_category: int | None = Field(None, ge=1)  # N per category (LVIS or CSV), drawn with `seed`
    seed: int = 0
    category_map: Path | None = None  # CSV `lvis,category`: readable names for LVIS categories
    licenses: list[str] | None = None  # keep only these licence codes ("by", "by-sa", "cc0", ...)

    # Downloads.
    cache_dir: Path | None = None  # None: ~/.objaverse/hf-objaverse-v1
    download_workers: int = Field(8, ge=1)  # threads of the render stage's prefetch pool
    timeout_s: float = Field(60.0, gt=0)  # connect timeout, and the longest silence while reading
    retries: int = Field(4, ge=0)  # extra attempts after the first, on 5xx/429/network errors
    backoff_s: float = Field(1.0, ge=0)  # first retry delay; doubles each retry
    prefetch: int = Field(16, ge=1)  # objects downloaded ahead of the renderers
    delete_after_render: bool = False  # delete GLBs this run downloaded once rendered

    @field_validator("uids")
    @classmethod
    def _clean_uids(cls, uids: list[str] | None) -> list[str] | None:
        if uids is None:
            return None
        cleaned = [uid.strip() for uid in uids]
        if not cleaned or not all(cleaned):
            raise ValueError("uids must be a non-empty list of non-empty strings")
        return cleaned

    @field_validator("lvis_categories")
    @classmethod
    def _check_categories(cls, value):
        if isinstance(value, list) and (not value or not all(name.strip() for name in value)):
            raise ValueError('lvis_categories must be "all" or a non-empty list of LVIS names')
        return value

    @field_validator("licenses")
    @classmethod
    def _normalise_licenses(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        codes = [code.strip().lower() for code in value]
        if not codes or not all(codes):
            raise ValueError('licenses must be a non-empty list of licence codes such as "by", "cc0"')
        return codes

    @model_validator(mode="after")
    def _one_selection(self) -> ObjaverseSourceConfig:
        given = [field for field in SELECTION_FIELDS if getattr(self, field) is not None]
        if len(given) != 1:
            found = f"got {', '.join(given)}" if given else "got none"
            raise ValueError(f"choose the objects with exactly one of {', '.join(SELECTION_FIELDS)} ({found})")
        if self.per_category is not None and given[0] not in ("lvis_categories", "csv"):
            raise ValueError("per_category needs categories to draw from: use it with lvis_categories or csv")
        return self

    def resolved_cache_dir(self) -> Path:
        return (self.cache_dir or DEFAULT_CACHE_DIR).expanduser()
