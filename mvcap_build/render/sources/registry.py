"""The object sources by their YAML `kind:`; each module exposes `SOURCE = ObjectSource(...)`."""

from __future__ import annotations

from mvcap_build.plugins import Entry, Registry
from mvcap_build.render.config import DemoSourceConfig, LocalSourceConfig, ObjaverseSourceConfig

SOURCES = Registry(
    "object source",
    Entry("demo", "mvcap_build.render.sources.demo:SOURCE", DemoSourceConfig),
    Entry("local", "mvcap_build.render.sources.local:SOURCE", LocalSourceConfig),
    Entry("objaverse", "mvcap_build.render.sources.objaverse:SOURCE", ObjaverseSourceConfig),
)
