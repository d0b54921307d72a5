"""Class-name files: which name each class folder of an ImageFolder benchmark stands for.

Four forms, told apart by the file's extension and content:

  *.txt (any other extension)  one name per line, in sorted folder order (blank lines ignored);
                               the form of OVT's released `gt_label_*.txt` files
  *.json, a list               names in sorted folder order
  *.json, an object            folder -> name (ImageNet-style `{"n01440764": "tench", ...}`), or
                               index -> [folder, name] (Keras' `imagenet_class_index.json`);
                               it may name more folders than the benchmark has (a full ImageNet
                               map serves ImageNet-V's subset)
  *.csv                        rows `folder,name` (an optional header row `folder,name`)

The positional forms must have exactly one name per folder. Names are used verbatim in the
prompts (OVT's own files keep underscores, e.g. `ocean_liner`).

A label-set file (`--label-set`) lists the classes the model chooses among when that differs
from the benchmark's own folders (OVT scores ImageNet-V+ against all 1000 ImageNet names): one
name per line, or a JSON list.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from mvcap_build.errors import ConfigError


def read_classnames(path: Path, folders: list[str]) -> dict[str, str]:
    """folder -> class name for every folder in `folders` (sorted class folders of the benchmark)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"class-name file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = _json(path)
        if isinstance(data, list):
            return _positional(path, [_name(path, n) for n in data], folders)
        if isinstance(data, dict):
            return _mapping(path, _json_pairs(path, data), folders)
        raise ConfigError(f"{path}: a class-name JSON file holds a list of names or an object folder -> name")
    if suffix == ".csv":
        return _mapping(path, _csv_pairs(path), folders)
    return _positional(path, _lines(path), folders)


def read_label_set(path: Path) -> list[str]:
    """The candidate class names, in file order (one per line, or a JSON list)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"label-set file not found: {path}")
    if path.suffix.lower() == ".json":
        data = _json(path)
        if not isinstance(data, list):
            raise ConfigError(f"{path}: a label-set JSON file holds a list of names")
        names = [_name(path, n) for n in data]
    else:
        names = _lines(path)
    if not names:
        raise ConfigError(f"{path}: the label set is empty")
    return names


def _positional(path: Path, names: list[str], folders: list[str]) -> dict[str, str]:
    if len(names) != len(folders):
        shown = ", ".join(folders[:5]) + (", ..." if len(folders) > 5 else "")
        raise ConfigError(
            f"{path} has {len(names)} class names but the benchmark has {len(folders)} class folders "
            f"({shown}): give one name per folder, in sorted folder order, or map folder -> name (JSON object or CSV)"
        )
    return dict(zip(folders, names))


def _mapping(path: Path, pairs: list[tuple[str, str]], folders: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for folder, name in pairs:
        if folder in mapping and mapping[folder] != name:
            raise ConfigError(f"{path}: folder {folder!r} is named twice ({mapping[folder]!r}, {name!r})")
        mapping[folder] = name
    missing = [f for f in folders if f not in mapping]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ConfigError(f"{path} names no class for {len(missing)} of the {len(folders)} class folders: {shown}")
    return {f: mapping[f] for f in folders}


def _json_pairs(path: Path, data: dict) -> list[tuple[str, str]]:
    pairs = []
    for key, value in data.items():
        if isinstance(value, str):
            pairs.append((str(key), _name(path, value)))
        elif isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
            pairs.append((value[0], _name(path, value[1])))  # index -> [folder, name]
        else:
            raise ConfigError(f"{path}: entry {key!r} is neither a name nor a [folder, name] pair")
    return pairs


def _csv_pairs(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as file:
        rows = [row for row in csv.reader(file) if any(cell.strip() for cell in row)]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["folder", "name"]:
        rows = rows[1:]
    pairs = []
    for number, row in enumerate(rows, 1):
        if len(row) < 2:
            raise ConfigError(f"{path}: row {number} is not `folder,name`: {row}")
        # An unquoted comma inside a name ("tench, Tinca tinca") splits it: join it back.
        pairs.append((row[0].strip(), _name(path, ",".join(row[1:]))))
    return pairs


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text("utf-8-sig").splitlines() if line.strip()]


def _json(path: Path):
    try:
        return json.loads(path.read_text("utf-8-sig"))
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON: {error}") from None


def _name(path: Path, name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{path}: class names must be non-empty strings, got {name!r}")
    return name.strip()
