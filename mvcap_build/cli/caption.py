"""`mvcap caption`: caption every view with a category-guided prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mvcap_build.caption.config import CaptionConfig, HFBackendConfig, OpenAIBackendConfig, VLLMBackendConfig
from mvcap_build.cli.common import (
    ConfigFile,
    Keys,
    KeysFile,
    Limit,
    NumShards,
    Quiet,
    RedoChoice,
    RedoOption,
    RetryFailed,
    Shard,
    run_options,
    run_stage_command,
    stage_config,
    user_errors,
)
from mvcap_build.cli.defaults import with_default, with_defaults
from mvcap_build.cli.output import quiet_libraries


def caption(
    root: Annotated[Path, typer.Argument(help="Dataset root with views (from render or extract).")],
    config: ConfigFile = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="'llava' (llava-hf/llava-1.5-7b-hf), a Hub id or a local model folder. Implies --backend hf."
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help=with_default(
                "hf (transformers) | vllm (offline engine; its own environment: scripts/setup-vllm-env.sh) | "
                "openai (any OpenAI-compatible server) | template (no model; used without --model).",
                CaptionConfig,
                "backend.kind",
            )
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="openai: the server's API root, e.g. http://localhost:8000/v1 (default $OPENAI_BASE_URL). "
            "The key is read from $OPENAI_API_KEY."
        ),
    ] = None,
    revision: Annotated[str | None, typer.Option(help="hf: Hub branch, tag or commit of the model.")] = None,
    prompt: Annotated[
        str | None,
        typer.Option(
            help=with_default(
                "Prompt template name in prompts/ (category_guided, plain) or a .txt path.", CaptionConfig, "prompt"
            )
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help=with_defaults(
                "hf, vllm: images per generate call.",
                {"hf": (HFBackendConfig, "batch_size"), "vllm": (VLLMBackendConfig, "batch_size")},
            )
        ),
    ] = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option(
            help=with_defaults(
                "Longest caption in tokens.",
                {
                    "hf": (HFBackendConfig, "max_new_tokens"),
                    "vllm": (VLLMBackendConfig, "max_new_tokens"),
                    "openai": (OpenAIBackendConfig, "max_new_tokens"),
                },
            )
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help=with_default("hf: auto | cuda | cpu.", HFBackendConfig, "device"))
    ] = None,
    dtype: Annotated[
        str | None,
        typer.Option(help=with_default("hf: auto | float32 | float16 | bfloat16.", HFBackendConfig, "dtype")),
    ] = None,
    gates: Annotated[
        bool | None,
        typer.Option(
            "--gates/--no-gates",
            help=with_default(
                "Quality gates with retries: CLIP's 77 tokens, the category named, on topic, no refusal or repetition.",
                CaptionConfig,
                "gates.enabled",
            ),
        ),
    ] = None,
    redo: RedoOption = RedoChoice.none,
    retry_failed: RetryFailed = False,
    limit: Limit = None,
    keys: Keys = None,
    keys_file: KeysFile = None,
    shard: Shard = 0,
    num_shards: NumShards = 1,
    quiet: Quiet = False,
) -> None:
    """Caption the views in ROOT/views into ROOT/captions, one manifest per object.

    Default prompt (MVCap's): "Write a short description for the image, noting that the main
    instance of the image is a {category}." Each manifest records backend, model, revision and
    prompt; captions made with other settings, or of views rendered since, are stale: the run
    stops and names them, and `--redo stale` re-captions exactly those objects.

    Models load from the local Hugging Face cache first; a model that is neither cached nor
    reachable fails within seconds (set HF_HUB_OFFLINE=1 to use only the cache).

    Example: mvcap caption data/demo --model llava
    """
    from mvcap_build.caption.config import CaptionConfig, apply_backend_flags
    from mvcap_build.config_io import load_yaml, relative_to_file, section
    from mvcap_build.dataset import DatasetRoot

    with user_errors():
        quiet_libraries()
        DatasetRoot(root).ensure_exists()
        data = (
            relative_to_file(CaptionConfig, section(load_yaml(config), "caption"), config.parent)
            if config is not None
            else {}
        )
        generation = {
            "revision": revision,
            "batch_size": batch_size,
            "max_new_tokens": max_new_tokens,
            "device": device,
            "dtype": dtype,
            "base_url": base_url,
        }
        data = apply_backend_flags(data, backend, model, generation)
        settings = stage_config("caption", None, {"prompt": prompt, "gates.enabled": gates}, data=data)
        if settings.backend.kind == "template" and backend is None and not quiet:
            typer.secho(
                "caption: no --model given: the `template` backend writes captions from metadata, without a model. "
                "Pass --model llava (or a Hub id / local folder) for model captions.",
                fg=typer.colors.YELLOW,
                err=True,
            )
        run_stage_command(
            "caption",
            root,
            settings,
            shard=shard,
            num_shards=num_shards,
            options=run_options(redo, retry_failed, quiet, limit=limit, keys=keys, keys_file=keys_file),
        )
