"""The machinery of every registry: a YAML name, its config class and a lazily imported target.

An entry pairs the name a part has in YAML with its config class (pydantic only, cheap to import,
so configs validate before anything heavy loads) and the import path of its implementation,
imported on first use: choosing the `template` backend never imports torch and `mvcap --help`
never imports Blender. Each registry lives beside what it registers (`registry.py` for stages,
`render/sources/registry.py`, `extract/readers.py`, `caption/backends/registry.py`); explicit
dictionaries, not import-time magic, so a new part is one line there plus its config class.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from mvcap_build.errors import ConfigError


@dataclass(frozen=True)
class Entry:
    name: str  # the YAML name
    target: str  # "package.module:attribute", imported by `load`
    config: type[BaseModel]

    def load(self) -> Any:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


class Registry(Mapping[str, Entry]):
    def __init__(self, what: str, *entries: Entry) -> None:
        self.what = what
        self._entries = {entry.name: entry for entry in entries}

    def __getitem__(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"unknown {self.what} {name!r}; choose from {sorted(self._entries)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
