"""Running stages: one (a stage command) or every section of a pipeline file (`mvcap build`).

Runners only compose stages: each stage validates, plans, records and does its own work.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from mvcap_build.dataset import DatasetRoot
from mvcap_build.pipeline.config import PipelineConfig
from mvcap_build.pipeline.stage import RunOptions, Stage, Summary
from mvcap_build.registry import STAGES


def run_stage(
    name: str,
    root: Path | DatasetRoot,
    config: BaseModel,
    *,
    shard: int = 0,
    num_shards: int = 1,
    options: RunOptions | None = None,
    make_stage: Callable[[BaseModel, RunOptions], Stage] | None = None,
) -> Summary:
    """`make_stage`: build the stage another way than from the registry (a caller that keeps a
    loaded caption model across shards)."""
    dataset = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    dataset.ensure_writable()
    stage = (make_stage or STAGES[name].load())(config, options or RunOptions())
    return stage.run(dataset, shard, num_shards)


def run_pipeline(
    config: PipelineConfig, *, options: RunOptions | None = None, echo: Callable[[str], None] = print
) -> list[Summary]:
    """Every section of the file, in order; each stage resumes, so a rerun after a kill finishes
    the job without redoing committed work."""
    root = DatasetRoot(config.root).ensure_writable()
    summaries = []
    for name, section in config.sections():
        summary = run_stage(name, root, section, options=options)
        echo(summary.line())
        summaries.append(summary)
        if summary.all_failed:  # nothing for the next stage to build on
            break
    return summaries
