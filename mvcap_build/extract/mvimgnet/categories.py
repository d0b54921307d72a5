"""MVImgNet's category names: its own `mvimgnet_category.txt` (`id,name`, with a few typos
fixed and the names lower-cased to read as nouns in a caption prompt) and an optional user
`category_map` CSV (`id,category`) laid over it.

Instances only carry a numeric category id in their folder name; the caption needs a word, so
every id an instance uses must resolve here, and a bad line fails loudly rather than mislabelling.
"""

from __future__ import annotations

import csv
from pathlib import Path

from mvcap_build.errors import SourceError
from mvcap_build.extract.mvimgnet_config import MVImgNetSourceConfig

__all__ = [
    "CATEGORIES_FILE",
    "CATEGORY_FIXES",
    "PROPER_NOUNS",
    "UNKNOWN_CATEGORY",
    "category_id",
    "category_table",
    "clean_category",
    "read_categories_file",
    "read_category_map",
]

CATEGORIES_FILE = "mvimgnet_category.txt"

# Errors in MVImgNet's own mvimgnet_category.txt, keyed by the name as the file spells it (after
# trimming spaces), read line by line from the released file. Only mistakes are fixed; odd but
# real names (Soccer, Badminton, Pawpaw, toy chook, Shakyamuni...) are MVImgNet's choice and
# stay: a category_map overrides any of them.
CATEGORY_FIXES = {
    "wahser": "washer",  # id 2: transposed letters (ShapeNet's class "washer")
    "screw driver": "screwdriver",  # id 105: one word
    "Pipe PVC Metal pipe": "pipe",  # id 145: two labels run together (PVC pipe, metal pipe)
    "Swin ring": "swim ring",  # id 221
    "Adapter(Water pipe)": "water pipe adapter",  # id 253: missing space, qualifier in brackets
}
# The file capitalises ids from 129 on ("Tripod", "Bagged snacks"): names are lower-cased to
# read as nouns inside a caption prompt, except these proper nouns.
PROPER_NOUNS = frozenset({"Chinese", "Shakyamuni"})
UNKNOWN_CATEGORY = "unknown"  # only for unsafe zip entries that name no category at all


def clean_category(raw: str) -> str:
    """A name from mvimgnet_category.txt as a noun for prompts: spaces trimmed and collapsed,
    the file's known mistakes fixed, lower case except proper nouns and acronyms."""
    name = " ".join(raw.split())
    if name in CATEGORY_FIXES:
        return CATEGORY_FIXES[name]
    return " ".join(
        word if word in PROPER_NOUNS or (word.isupper() and len(word) > 1) else word.lower() for word in name.split()
    )


def category_id(text: str) -> str:
    """Ids compare as numbers when they are numbers: folder `053` is category 53."""
    text = text.strip()
    return str(int(text)) if text.isdigit() else text


def read_categories_file(path: Path) -> dict[str, str]:
    """id -> cleaned name from MVImgNet's `id,name` lines (CRLF or LF, blank lines skipped; ids
    have gaps, which is fine: only an id an instance uses must be there)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"categories file {path} cannot be read: {exc}") from exc
    categories: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        raw_id, comma, raw_name = line.partition(",")
        name = clean_category(raw_name)
        if not comma or not raw_id.strip().isdigit() or not name:
            raise SourceError(f"{path}:{number}: expected `id,name`, found {line!r}")
        _add_category(categories, category_id(raw_id), name, f"{path}:{number}")
    return categories


def read_category_map(path: Path) -> dict[str, str]:
    """id -> category from a CSV `id,category` (a header row is optional); names are the user's
    and kept as written, only trimmed."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SourceError(f"category_map not found: {path} (CSV with columns id,category)")
    mapping: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
            if number == 1 and [cell.strip().lower() for cell in row[:2]] == ["id", "category"]:
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise SourceError(f"{path}:{number}: expected `id,category`, found {','.join(row)!r}")
            _add_category(mapping, category_id(row[0]), " ".join(row[1].split()), f"{path}:{number}")
    return mapping


def _add_category(categories: dict[str, str], key: str, name: str, where: str) -> None:
    if categories.get(key, name) != name:
        raise SourceError(f"{where}: id {key} listed again as {name!r} (first {categories[key]!r})")
    categories[key] = name


def category_table(config: MVImgNetSourceConfig, default_dir: Path) -> tuple[dict[str, str], str]:
    """The id -> category table (the file, then the map over it) and where it came from."""
    categories: dict[str, str] = {}
    origins = []
    file = Path(config.categories_file).expanduser() if config.categories_file else default_dir / CATEGORIES_FILE
    if config.categories_file and not file.is_file():
        raise SourceError(f"categories_file not found: {file}")
    if file.is_file():
        categories.update(read_categories_file(file))
        origins.append(str(file))
    if config.category_map:
        categories.update(read_category_map(config.category_map))
        origins.append(str(config.category_map))
    return categories, " + ".join(origins) or f"none (no {CATEGORIES_FILE} in {default_dir}, no category_map)"
