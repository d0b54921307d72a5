"""Every pluggable part by the name it has in YAML: stages, object sources, caption backends.

An entry pairs that name with its config class (pydantic only, cheap to import, so configs
validate before anything heavy loads) and the import path of its implementation, imported on
first use, so choosing the `template` backend never imports torch and `mvcap --help` never
imports Blender. Explicit dictionaries, not import-time magic: a new part is one line here plus
its config class in the union of its kind.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from mvcap_build.caption.config import (
    CaptionConfig,
    HFBackendConfig,
    OpenAIBackendConfig,
    TemplateBackendConfig,
    VLLMBackendConfig,
)
from mvcap_build.errors import ConfigError
from mvcap_build.export.config import ExportConfig
from mvcap_build.extract.config import ExtractConfig
from mvcap_build.extract.mvimgnet_config import MVImgNetSourceConfig
from mvcap_build.extract.nerf_config import NerfSourceConfig
from mvcap_build.render.config import DemoSourceConfig, LocalSourceConfig, ObjaverseSourceConfig, RenderConfig
from mvcap_build.train.config import TrainStageConfig


@dataclass(frozen=True)
class Entry:
    name: str  # the YAML name
    target: str  # "package.module:attribute", imported by `load`
    config: type[BaseModel]

    def load(self) -> Any:
        return getattr(self.module(), self.target.partition(":")[2])

    def module(self) -> Any:
        """The implementation's module (where optional companions live, e.g. `make_fetcher`)."""
        return importlib.import_module(self.target.partition(":")[0])


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


# In pipeline order: `mvcap build` runs the sections a file has, in this order.
STAGES = Registry(
    "stage",
    Entry("render", "mvcap_build.render.stage:RenderStage", RenderConfig),
    Entry("extract", "mvcap_build.extract.stage:ExtractStage", ExtractConfig),
    Entry("caption", "mvcap_build.caption.stage:CaptionStage", CaptionConfig),
    Entry("export", "mvcap_build.export.stage:ExportStage", ExportConfig),
    Entry("train_ovt", "mvcap_build.train.stage:TrainStage", TrainStageConfig),
)

SOURCES = Registry(
    "object source",
    Entry("demo", "mvcap_build.render.sources.demo:list_objects", DemoSourceConfig),
    Entry("local", "mvcap_build.render.sources.local:list_objects", LocalSourceConfig),
    Entry("objaverse", "mvcap_build.render.sources.objaverse:list_objects", ObjaverseSourceConfig),
)

# Readers of existing captures: each module has `list_instances(config)` and `read_capture(...)`.
CAPTURE_SOURCES = Registry(
    "capture source",
    Entry("mvimgnet", "mvcap_build.extract.mvimgnet:read_capture", MVImgNetSourceConfig),
    Entry("im3d", "mvcap_build.extract.nerf:read_capture", NerfSourceConfig),
    Entry("nerf", "mvcap_build.extract.nerf:read_capture", NerfSourceConfig),
)

CAPTION_BACKENDS = Registry(
    "caption backend",
    Entry("template", "mvcap_build.caption.backends.template:TemplateBackend", TemplateBackendConfig),
    Entry("hf", "mvcap_build.caption.backends.hf:HFBackend", HFBackendConfig),
    Entry("openai", "mvcap_build.caption.backends.openai_server:OpenAIBackend", OpenAIBackendConfig),
    Entry("vllm", "mvcap_build.caption.backends.vllm_engine:VLLMBackend", VLLMBackendConfig),
)
