"""Which folder of an export's shards to read: `export.json` lists its image sets (`data/` with the
original views, `data-<size>px-<format>/` with training-ready re-encodings), and train-ovt and
eval both choose among them here.
"""

from __future__ import annotations

import json
from pathlib import Path

from mvcap_build.errors import ConfigError


def shard_folder(export_dir: Path, images: str = "auto") -> str:
    """The folder of shards to read, from the image sets that export.json lists: `images` auto takes
    the training-ready set when there is one, original / training that kind only."""
    try:
        sets = json.loads((export_dir / "export.json").read_text("utf-8")).get("image_sets") or {}
    except FileNotFoundError:
        sets = {}
    training = [folder for folder, encoding in sets.items() if encoding.get("images") == "training-ready"]
    original = [folder for folder, encoding in sets.items() if encoding.get("images") != "training-ready"]
    if images == "training" and not training:
        raise ConfigError(
            f"{export_dir} has no training-ready shards: export with --image-size, or use images: original"
        )
    if images == "original" and sets and not original:
        raise ConfigError(
            f"{export_dir} holds only training-ready shards (exported with --no-originals): "
            "use images: training (--images training), or export the originals too"
        )
    if images != "original" and training:
        return training[0]
    return "data"
