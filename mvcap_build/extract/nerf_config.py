"""Settings of the `im3d` / `nerf` capture sources: a folder of NeRF-synthetic ("Blender") object
folders. Pydantic only, so a YAML file validates before any image is touched.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class NerfSourceConfig(BaseModel):
    """One object per subfolder of `folder`, each with `transforms_<split>.json` files.

    `im3d` and `nerf` read the same format; the kind only names the source (and the default
    `name`), since IM3D is NeRF-synthetic folders named `{class}_{NN}`.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["im3d", "nerf"]
    folder: Path  # holds the object folders
    # Which transforms_<split>.json to read; a split a folder lacks is skipped, none at all fails.
    splits: list[str] = Field(default_factory=lambda: ["train"], min_length=1)
    category_map: Path | None = None  # CSV `folder,category` or `class,category`; overrides the name rule
    name: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_-]*$")  # source part of keys; None = kind

    @field_validator("splits")
    @classmethod
    def _plain_distinct_splits(cls, splits: list[str]) -> list[str]:
        # A split becomes part of a file name, so it must not carry path separators.
        for split in splits:
            if not re.fullmatch(r"[A-Za-z0-9_-]+", split):
                raise ValueError(f"split {split!r}: use letters, digits, '_' or '-' (e.g. train, val, test)")
        if len(set(splits)) != len(splits):
            raise ValueError(f"splits listed twice: {splits}")
        return splits

    @property
    def source_name(self) -> str:
        return self.name or self.kind
