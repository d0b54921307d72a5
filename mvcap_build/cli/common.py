"""What every command shares: turning known errors into one readable line and exit code 2."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from mvcap_build.config_io import ConfigError, load_yaml, merge_overrides

# Errors that mean "fix your config or environment", not "bug in mvcap": no traceback for these.
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, ValueError, FileNotFoundError, RuntimeError)


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except USER_ERRORS as error:
        if os.environ.get("MVCAP_DEBUG"):
            raise
        name = type(error).__name__
        typer.secho(f"error ({name}): {error}", fg=typer.colors.RED, err=True)
        typer.secho("(set MVCAP_DEBUG=1 for a traceback)", dim=True, err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.secho("interrupted: committed work is kept; run the same command again to resume", err=True)
        raise typer.Exit(130) from None


def stage_config(config_path: Path | None, section: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """Config data for one stage: a YAML file (a stage file, or a pipeline file's `section`)
    with command-line flags applied on top."""
    data: dict[str, Any] = {}
    if config_path is not None:
        data = load_yaml(config_path)
        if section and "root" in data:  # a pipeline file: take this stage's section
            data = data.get(section) or {}
    return merge_overrides(data, overrides)


def show_training_log() -> None:
    """Send the trainer's progress lines (loss terms, checkpoints) to the terminal."""
    from rich.logging import RichHandler

    logger = logging.getLogger("mvcap_build.train")
    if not logger.handlers:
        logger.addHandler(RichHandler(show_path=False, rich_tracebacks=False))
    logger.setLevel(logging.INFO)
