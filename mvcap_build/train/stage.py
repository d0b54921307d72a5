"""`train-ovt` as a pipeline stage: train on ROOT/export, write checkpoints to ROOT/train/ovt.

Training is one unit that resumes from its own checkpoints (see `ovt/checkpoint.py`), so this stage
only resolves paths, checks there is an export, records its run and calls the trainer. A run in
the output folder made with other settings stops the stage; `--redo stale` starts it over.
"""

from __future__ import annotations

from pathlib import Path

from mvcap_build.dataset import DatasetRoot
from mvcap_build.errors import ConfigError
from mvcap_build.pipeline.stage import Redo, RunOptions, Summary, record_run
from mvcap_build.train.config import TrainStageConfig


class TrainStage:
    name = "train_ovt"

    def __init__(self, config: TrainStageConfig, options: RunOptions | None = None) -> None:
        self.config = config
        self.options = options or RunOptions()

    def paths(self, root: DatasetRoot) -> tuple[Path, Path]:
        export_dir = self.config.export_dir or root.export_dir
        output = self.config.output or root.path / "train" / "ovt"
        return Path(export_dir), Path(output)

    def run(self, root: DatasetRoot, shard: int = 0, num_shards: int = 1) -> Summary:
        if num_shards != 1:
            raise ConfigError(
                "train-ovt is one run over the whole export: use `accelerate launch` for several GPUs, not --num-shards"
            )
        export_dir, output = self.paths(root)
        if not any((export_dir / "data").glob("*.parquet")) and not (export_dir / "metadata.json").is_file():
            raise ConfigError(
                f"train-ovt needs an export at {export_dir} (data/*.parquet): "
                "add an `export:` section or run `mvcap export` first"
            )
        from mvcap_build.train.trainer import train_ovt

        checkpoint = train_ovt(
            self.config.trainer_config(),
            export_dir,
            output,
            images=self.config.images,
            redo=self.options.redo == Redo.stale,
            on_start=lambda: record_run(root, self.name, self.config, self.options, shard, num_shards),
        )
        summary = Summary(self.name, "trained", noun="runs", units=1, done=1)
        summary.headline = f"checkpoint at {checkpoint}"
        return summary
