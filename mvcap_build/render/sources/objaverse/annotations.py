"""Objaverse 1.0's annotation files: where each object lives, its LVIS category, its metadata.

Each file is read from the cache and fetched into it first when missing, through the same
downloader as the GLBs. A file that cannot be had means the source cannot start: SourceError.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import re
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mvcap_build.errors import SourceError
from mvcap_build.render.sources.objaverse.download import HubFiles, file_url
from mvcap_build.render.sources.objaverse.errors import AssetUnavailable

log = logging.getLogger(__name__)

OBJECT_PATHS = "object-paths.json.gz"  # uid -> "glbs/000-023/<uid>.glb"
LVIS_ANNOTATIONS = "lvis-annotations.json.gz"  # LVIS category -> [uid, ...]
_QUALIFIER = re.compile(r"\([^)]*\)")


def metadata_relpath(object_path: str) -> str:
    """`glbs/000-023/<uid>.glb` -> `metadata/000-023.json.gz`: metadata is split like the GLBs."""
    return f"metadata/{object_path.split('/')[1]}.json.gz"


def load_json_gz(files: HubFiles, relpath: str) -> Any:
    """A gzipped JSON file of the dataset. A damaged cached copy is downloaded once more."""
    for refresh in (False, True):
        try:
            path, _ = files.ensure(relpath, refresh=refresh)
        except AssetUnavailable as error:
            raise SourceError(
                f"cannot get Objaverse's {relpath} from {file_url(relpath)} ({error}); check the network or "
                f"HF_ENDPOINT, or put the file at {files.local_path(relpath)}"
            ) from None
        try:
            with gzip.open(path, "rb") as handle:
                return json.load(handle)
        except (OSError, EOFError, zlib.error, ValueError) as error:
            if refresh:
                raise SourceError(f"{path} is not valid gzipped JSON even after a fresh download ({error})") from None
            log.warning("cached %s is unreadable (%s); downloading it again", path, error)


def load_object_paths(files: HubFiles) -> dict[str, str]:
    return load_json_gz(files, OBJECT_PATHS)


def load_lvis(files: HubFiles) -> dict[str, list[str]]:
    return load_json_gz(files, LVIS_ANNOTATIONS)


def lvis_category_of(lvis: dict[str, list[str]]) -> dict[str, str]:
    """uid -> its LVIS category. Should a uid be listed twice, the first name in sorted order wins,
    so the answer never depends on the file's order."""
    owner: dict[str, str] = {}
    for category in sorted(lvis, reverse=True):
        for uid in lvis[category]:
            owner[uid] = category
    return owner


def load_metadata(files: HubFiles, object_paths: dict[str, str], uids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Metadata of the given uids, one `metadata/000-NNN.json.gz` at a time, keeping only theirs."""
    by_folder: dict[str, list[str]] = {}
    for uid in uids:
        by_folder.setdefault(metadata_relpath(object_paths[uid]), []).append(uid)
    found: dict[str, dict[str, Any]] = {}
    for relpath in sorted(by_folder):
        folder = load_json_gz(files, relpath)
        for uid in by_folder[relpath]:
            if isinstance(folder.get(uid), dict):
                found[uid] = folder[uid]
    return found


def readable_category(lvis_name: str) -> str:
    """`coffee_table` -> `coffee table`, `bow_(weapon)` -> `bow`: the noun for the caption prompt."""
    plain = " ".join(_QUALIFIER.sub(" ", lvis_name).replace("_", " ").split())
    return plain or " ".join(lvis_name.replace("_", " ").split())


def read_category_map(path: Path, lvis_names: Iterable[str]) -> dict[str, str]:
    """CSV `lvis,category`: the caption noun for LVIS categories. Unknown LVIS names are refused,
    because a typo would otherwise silently keep the default name."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SourceError(f"category_map not found: {path} (columns: lvis,category)")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"lvis", "category"} <= set(reader.fieldnames):
            raise SourceError(f"{path}: needs a header with columns 'lvis' and 'category'")
        mapping = {}
        for line, row in enumerate(reader, start=2):
            lvis, category = (row.get("lvis") or "").strip(), (row.get("category") or "").strip()
            if not lvis or not category:
                raise SourceError(f"{path}:{line}: empty lvis or category")
            mapping[lvis] = category
    unknown = sorted(set(mapping) - set(lvis_names))
    if unknown:
        raise SourceError(f"{path}: {len(unknown)} name(s) are not LVIS categories of Objaverse: {unknown[:5]}")
    return mapping


def attribution(uid: str, metadata: dict[str, Any] | None, lvis_category: str | None) -> dict[str, Any]:
    """The attrs an object carries: what CC-BY attribution needs, and where it came from."""
    metadata = metadata or {}
    user = metadata.get("user") if isinstance(metadata.get("user"), dict) else {}
    license_code = metadata.get("license")
    return {
        "uid": uid,
        "license": license_code.strip().lower() if isinstance(license_code, str) else None,
        "author": user.get("displayName") or user.get("username"),
        "author_url": user.get("profileUrl"),
        "name": metadata.get("name"),
        "source_url": metadata.get("viewerUrl") or metadata.get("uri"),
        "lvis_category": lvis_category,
    }
