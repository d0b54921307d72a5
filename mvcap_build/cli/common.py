"""What every command shares: option types, reading a stage's config (file, then flags), running
it, and turning known user errors into one readable line.

Errors of ours (any other exception) keep their traceback: they are bugs to report.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from mvcap_build.pipeline.stage import Summary


class RedoChoice(str, Enum):
    none = "none"
    stale = "stale"


ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML with this stage's settings, or a pipeline YAML (its section for this stage is read). "
        "Flags win over the file.",
    ),
]
Shard = Annotated[int, typer.Option(help="This job's shard (e.g. $SLURM_ARRAY_TASK_ID).")]
NumShards = Annotated[int, typer.Option(help="Number of shards the objects are split into.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bar or progress lines; the summary only.")]
RetryFailed = Annotated[bool, typer.Option("--retry-failed", help="Redo objects that are in the failure ledger.")]
RedoOption = Annotated[
    RedoChoice,
    typer.Option(
        help="stale: redo the units made with other settings than this run's (by default the run stops and names them)."
    ),
]
Limit = Annotated[
    int | None,
    typer.Option(
        "--limit",
        min=1,
        help="Try a subset: only the first N objects of this shard, in key order. A rerun without it does the rest.",
    ),
]
Keys = Annotated[
    list[str] | None,
    typer.Option(
        "--keys",
        metavar="KEY[,KEY...]",
        help="Try a subset: only these object keys, comma-separated (repeatable), "
        "e.g. local/Duck.glb,local/monkey.glb.",
    ),
]
KeysFile = Annotated[
    Path | None,
    typer.Option(
        "--keys-file",
        help="Try a subset: only the object keys in this file, one a line (lines starting with # are skipped).",
    ),
]


# Failures of the machine, not of mvcap: a full disk or quota, a read-only or forbidden path.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


@contextmanager
def user_errors() -> Iterator[None]:
    """Known user errors become one line and exit code 2; Ctrl-C says how to resume."""
    from mvcap_build.errors import UserError

    try:
        yield
    except UserError as error:
        if os.environ.get("MVCAP_DEBUG"):
            raise
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        typer.secho("(set MVCAP_DEBUG=1 for a traceback)", dim=True, err=True)
        raise typer.Exit(2) from None
    except OSError as error:
        if os.environ.get("MVCAP_DEBUG") or error.errno not in ENVIRONMENT_ERRNOS:
            raise
        where = f"{error.filename}: " if error.filename else ""
        hint = (
            "free some space and rerun the same command to resume"
            if error.errno in (errno.ENOSPC, errno.EDQUOT)
            else "choose a dataset root (and paths) this user can write"
        )
        typer.secho(
            f"error: {where}{error.strerror or error}: committed work is kept; {hint}", fg=typer.colors.RED, err=True
        )
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.secho("interrupted: committed work is kept; run the same command again to resume", err=True)
        raise typer.Exit(130) from None


def run_options(
    redo: RedoChoice = RedoChoice.none,
    retry_failed: bool = False,
    quiet: bool = False,
    *,
    limit: int | None = None,
    keys: Sequence[str] | None = None,
    keys_file: Path | None = None,
):
    from mvcap_build.pipeline.stage import Redo, RunOptions

    return RunOptions(
        redo=Redo(redo.value),
        retry_failed=retry_failed,
        progress=not quiet,
        limit=limit,
        keys=selected_keys(keys, keys_file),
    )


def selected_keys(keys: Sequence[str] | None, keys_file: Path | None) -> tuple[str, ...] | None:
    """The object keys of `--keys a,b --keys c` and `--keys-file FILE` together; None: all."""
    from mvcap_build.errors import ConfigError

    if not keys and keys_file is None:
        return None
    chosen = [key.strip() for given in keys or () for key in given.split(",")]
    if keys_file is not None:
        try:
            lines = keys_file.read_text("utf-8").splitlines()
        except OSError as error:
            raise ConfigError(f"--keys-file {keys_file}: {error.strerror or error}") from None
        chosen += [line.strip() for line in lines if not line.lstrip().startswith("#")]
    chosen = [key for key in dict.fromkeys(chosen) if key]
    if not chosen:
        raise ConfigError("--keys / --keys-file name no object key")
    return tuple(chosen)


def stage_config(name: str, config_path: Path | None, overrides: dict[str, Any], data: dict[str, Any] | None = None):
    """The validated config of stage `name`: its section of `config_path`, flags on top."""
    from mvcap_build.config_io import load_yaml, merge_overrides, relative_to_file, section, validate
    from mvcap_build.registry import STAGES

    model = STAGES[name].config
    if data is None:  # paths in the file are relative to the file; flags, to the current folder
        data = (
            relative_to_file(model, section(load_yaml(config_path), name), config_path.parent)
            if config_path is not None
            else {}
        )
    return validate(model, merge_overrides(data, overrides), f"{name} config")


def run_stage_command(name: str, root: Path, config, *, shard: int = 0, num_shards: int = 1, options=None) -> None:
    """Run one stage, print its summary, and exit non-zero if it had work and none succeeded."""
    from mvcap_build.pipeline.runner import run_stage

    summary = run_stage(name, root, config, shard=shard, num_shards=num_shards, options=options)
    typer.echo(summary.line())
    exit_if_all_failed([summary], root)


def exit_if_all_failed(summaries: Sequence[Summary], root: Path) -> None:
    for summary in summaries:
        if summary.all_failed:
            typer.secho(
                f"{summary.stage}: every one of the {summary.attempted} {summary.noun} it tried failed; "
                f"the reasons are in {Path(root) / 'failures' / summary.stage}",
                fg=typer.colors.RED,
                err=True,
            )
            raise typer.Exit(1)
