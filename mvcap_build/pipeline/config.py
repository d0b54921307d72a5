"""A pipeline file: the dataset root and one section per stage (a missing section skips it).

The sections are the stages of `mvcap_build.registry.STAGES`, each validated by its own config
class, so a typo in the training section fails before hours of rendering (a test keeps the two
lists equal).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from mvcap_build.caption.config import CaptionConfig
from mvcap_build.export.config import ExportConfig, HubConfig
from mvcap_build.extract.config import ExtractConfig
from mvcap_build.launch.config import RunnerConfig
from mvcap_build.render.config import RenderConfig
from mvcap_build.train.config import TrainStageConfig


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: Path  # the dataset root; in a file, relative to the file's folder (as every path there)
    render: RenderConfig | None = None
    extract: ExtractConfig | None = None
    caption: CaptionConfig | None = None
    export: ExportConfig | None = None
    hub: HubConfig | None = None  # the push of the export to the Hub, after export
    train_ovt: TrainStageConfig | None = None
    runner: RunnerConfig | None = None  # not a stage: where `mvcap launch` runs the shards (mvcap build ignores it)

    def sections(self) -> list[tuple[str, BaseModel]]:
        """(stage name, its config) for every section present, in pipeline order."""
        from mvcap_build.registry import STAGES

        return [(name, getattr(self, name)) for name in STAGES if getattr(self, name) is not None]


def load_pipeline(path: Path, root: Path | None = None) -> PipelineConfig:
    """A pipeline file, validated, with its relative paths taken from the file's folder.

    `root` (a `--root` flag) replaces the file's root and stays relative to the current folder."""
    from mvcap_build.config_io import load_yaml, relative_to_file, validate

    data = relative_to_file(PipelineConfig, load_yaml(path), Path(path).parent)
    if root is not None:
        data["root"] = str(root)
    return validate(PipelineConfig, data, str(path))
