"""Run the stages a pipeline file names, in order. Every stage resumes, so a rerun after a kill
finishes the job without redoing committed work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mvcap_build.config_io import ConfigError, dump_yaml, validate
from mvcap_build.dataset import DatasetRoot
from mvcap_build.dataset.atomic import atomic_write_text
from mvcap_build.pipeline.config import PipelineConfig


def check_train_settings(config: PipelineConfig) -> None:
    """Validate the training section before hours of rendering, not after."""
    if config.train_ovt is None:
        return
    from mvcap_build.train.config import TrainOVTConfig

    validate(TrainOVTConfig, config.train_settings(), "train_ovt section")


def run_pipeline(config: PipelineConfig, *, show_progress: bool = True, echo: Callable[[str], None] = print) -> Path:
    check_train_settings(config)
    root = DatasetRoot(config.root)
    root.path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root.run_config("build"), dump_yaml(config))
    if config.render:
        from mvcap_build.render.stage import run_render

        s = run_render(root, config.render, show_progress=show_progress)
        echo(f"render: {s.rendered} rendered, {s.already_done} already done, {sum(s.failed.values())} failed {dict(s.failed) or ''}")
    if config.caption:
        from mvcap_build.caption.stage import run_caption

        c = run_caption(root, config.caption, show_progress=show_progress)
        echo(f"caption: {c.captioned} objects captioned, {c.already_done} already done, {sum(c.failed.values())} failed")
    if config.export:
        from mvcap_build.export.stage import run_export

        e = run_export(root, config.export, show_progress=show_progress)
        echo(f"export: {e.objects} objects, {e.views} views -> {e.folder}")
    if config.train_ovt:
        from mvcap_build.train.config import TrainOVTConfig
        from mvcap_build.train.trainer import train_ovt

        if not (root.export_dir / "export.json").is_file():
            raise ConfigError("train_ovt needs an export: add an `export:` section or run `mvcap export` first")
        output = config.train_ovt.output or root.path / "train" / "ovt"
        checkpoint = train_ovt(TrainOVTConfig(**config.train_settings()), root.export_dir, output)
        echo(f"train-ovt: checkpoint at {checkpoint}")
    return root.path
