"""The `hub:` section as a stage: push the export to a Hub dataset repo (`push.py` does the work).

A stage like the others, so `mvcap build` and `mvcap launch` only compose stages: it runs after
export, as one shard, and a rerun uploads only what the Hub does not have yet.
"""

from __future__ import annotations

from typing import ClassVar

from mvcap_build.dataset import DatasetRoot
from mvcap_build.errors import ConfigError
from mvcap_build.export.config import HubConfig
from mvcap_build.pipeline.stage import RunOptions, Summary


class HubStage:
    name: ClassVar[str] = "hub"

    def __init__(self, config: HubConfig, options: RunOptions | None = None) -> None:
        self.config = config
        self.options = options or RunOptions()

    def run(self, root: DatasetRoot, shard: int = 0, num_shards: int = 1) -> Summary:
        if num_shards != 1:
            raise ConfigError("hub pushes the whole export: it runs as one shard (--num-shards 1)")
        if not self.config.repo_id:
            return Summary(self.name, headline="no repo_id: nothing pushed (set hub.repo_id or pass --hf-push)")
        from mvcap_build.export.push import push_export

        pushed = push_export(root.export_dir, self.config, progress=self.options.progress)
        return Summary(self.name, units=1, done=1, headline=pushed.text())
