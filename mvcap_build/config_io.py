"""YAML in, validated config objects out, with errors that name the offending key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from mvcap_build.errors import ConfigError

__all__ = ["ConfigError", "dump_yaml", "load_yaml", "merge_overrides", "relative_to_file", "section", "validate"]

# Marks a str setting that may name a local file or folder (a model folder beside a Hub id, a
# prompt file beside a template name): resolved against a config file only where that path exists.
PATH_IF_EXISTS = {"path_if_exists": True}

M = TypeVar("M", bound=BaseModel)


def load_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return data


def validate(model: type[M], data: dict[str, Any], where: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
            message = "unknown key (check its spelling)" if problem["type"] == "extra_forbidden" else problem["msg"]
            lines.append(f"  {key}: {message}")
        raise ConfigError(f"{where}: invalid configuration\n" + "\n".join(lines)) from None


def merge_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Apply CLI flags over YAML values. Keys are dotted paths ("views.num_views"); None = unset."""
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = merged
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        node[leaf] = value
    return merged


def dump_yaml(model: BaseModel) -> str:
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False)


def section(data: dict[str, Any], name: str) -> dict[str, Any]:
    """One stage's settings from a loaded YAML file: a pipeline file (it names a `root`) gives its
    `name:` section, any other file is taken as that stage's settings alone."""
    if "root" not in data:
        return data
    part = data.get(name)
    if part is None:
        return {}
    if not isinstance(part, dict):
        raise ConfigError(f"the `{name}:` section must be a mapping of keys to values")
    return part


def relative_to_file(model: type[BaseModel], data: dict[str, Any], base: Path) -> dict[str, Any]:
    """`data` (read from a file in folder `base`) with its relative paths made relative to `base`.

    Paths in a config file mean the same wherever the command runs from, as in docker compose or
    a Makefile. The settings that are paths are found from `model`'s fields (`Path`, `list[Path]`,
    in nested and union-typed sections too); flags given on the command line stay relative to the
    current folder. Unknown keys are left for validation to name."""
    base = Path(base).expanduser().absolute()
    out = dict(data)
    for key, value in data.items():
        kinds = _field_kinds(model, key)
        if isinstance(value, dict):
            for nested in kinds["models"]:
                value = relative_to_file(nested, value, base)
            out[key] = value
        elif kinds["path"] and isinstance(value, str):
            out[key] = _against(base, value)
        elif kinds["path"] and isinstance(value, list):
            out[key] = [_against(base, v) if isinstance(v, str) else v for v in value]
        elif (
            kinds["maybe"]
            and isinstance(value, str)
            and not Path(value).expanduser().is_absolute()
            and (base / value).exists()
        ):
            out[key] = os.path.normpath(base / value)
    return out


def _against(base: Path, value: str) -> str:
    path = Path(value).expanduser()
    return value if path.is_absolute() or not value else os.path.normpath(base / path)  # "pipelines/../data" -> "data"


def _field_kinds(model: type[BaseModel], key: str) -> dict[str, Any]:
    import typing

    field = model.model_fields.get(key)
    kinds: dict[str, Any] = {"path": False, "maybe": False, "models": []}
    if field is None:
        return kinds
    kinds["maybe"] = bool(
        field.json_schema_extra
        and isinstance(field.json_schema_extra, dict)
        and field.json_schema_extra.get("path_if_exists")
    )
    stack = [field.annotation]
    while stack:
        annotation = stack.pop()
        if annotation is Path:
            kinds["path"] = True
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            kinds["models"].append(annotation)
        else:
            stack.extend(typing.get_args(annotation))
    return kinds
