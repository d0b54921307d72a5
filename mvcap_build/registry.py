"""The stages by the name of their YAML section, in pipeline order.

`mvcap build` runs the sections a file has, in this order. The other registries sit beside what
they register: object sources in `render/sources/registry.py`, capture readers in
`extract/readers.py`, caption backends in `caption/backends/registry.py` (machinery in
`plugins.py`).
"""

from __future__ import annotations

from mvcap_build.caption.config import CaptionConfig
from mvcap_build.export.config import ExportConfig, HubConfig
from mvcap_build.extract.config import ExtractConfig
from mvcap_build.plugins import Entry, Registry
from mvcap_build.render.config import RenderConfig
from mvcap_build.train.config import TrainStageConfig

STAGES = Registry(
    "stage",
    Entry("render", "mvcap_build.render.stage:RenderStage", RenderConfig),
    Entry("extract", "mvcap_build.extract.stage:ExtractStage", ExtractConfig),
    Entry("caption", "mvcap_build.caption.stage:CaptionStage", CaptionConfig),
    Entry("export", "mvcap_build.export.stage:ExportStage", ExportConfig),
    Entry("hub", "mvcap_build.export.hub_stage:HubStage", HubConfig),  # the push of the export
    Entry("train_ovt", "mvcap_build.train.stage:TrainStage", TrainStageConfig),
)
