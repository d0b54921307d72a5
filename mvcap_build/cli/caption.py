"""`mvcap caption`: caption every rendered view with a category-guided prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mvcap_build.cli.common import stage_config, user_errors


def caption(
    root: Annotated[Path, typer.Argument(help="Dataset root with rendered views.")],
    config: Annotated[Optional[Path], typer.Option(help="YAML with caption settings (or a pipeline YAML: its `caption:` section).")] = None,
    backend: Annotated[Optional[str], typer.Option(help="hf (transformers) | template (no model).")] = None,
    model: Annotated[Optional[str], typer.Option(help="hf: 'llava' (llava-hf/llava-1.5-7b-hf), a Hub id or a local model folder.")] = None,
    prompt: Annotated[Optional[str], typer.Option(help="Prompt template name in prompts/ (category_guided, plain) or a .txt path.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per generate call.")] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option(help="Longest caption in tokens.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cuda | cpu.")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Redo objects in the failure ledger.")] = False,
    shard: Annotated[int, typer.Option(help="This job's shard.")] = 0,
    num_shards: Annotated[int, typer.Option(help="Number of shards.")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Caption the views in ROOT/views into ROOT/captions, one manifest per object.

    Default prompt (MVCap's): "Write a short description for the image, noting that the main
    instance of the image is a {category}." Each row records backend, model and prompt.

    Example: mvcap caption data/demo --backend hf --model llava
    """
    from mvcap_build.caption.config import CaptionConfig
    from mvcap_build.caption.stage import run_caption
    from mvcap_build.config_io import dump_yaml, validate
    from mvcap_build.dataset import DatasetRoot
    from mvcap_build.dataset.atomic import atomic_write_text

    with user_errors():
        overrides = {
            "backend": backend,
            "model": model,
            "prompt": prompt,
            "batch_size": batch_size,
            "max_new_tokens": max_new_tokens,
            "device": device,
            "retry_failed": retry_failed or None,
        }
        cfg = validate(CaptionConfig, stage_config(config, "caption", overrides), "caption config")
        dataset = DatasetRoot(root)
        atomic_write_text(dataset.run_config("caption"), dump_yaml(cfg))
        s = run_caption(dataset, cfg, shard=shard, num_shards=num_shards, show_progress=not quiet)
        typer.echo(
            f"caption: {s.captioned} objects ({s.views} views) captioned, {s.already_done} already done, "
            f"{sum(s.failed.values())} failed {dict(s.failed) or ''}, {s.skipped_failed} skipped (in ledger) "
            f"of {s.objects} rendered objects in shard {shard}/{num_shards}"
        )
