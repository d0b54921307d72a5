"""YAML in, validated config objects out, with errors that name the offending key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from mvcap_build.errors import ConfigError

__all__ = ["ConfigError", "dump_yaml", "load_yaml", "merge_overrides", "section", "validate"]

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
