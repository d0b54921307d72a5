"""`mvcap failures`: the failure ledgers of a dataset root, and one entry in full with the lines
of its worker log. Read-only: it never writes to the root."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mvcap_build.cli.common import user_errors

if TYPE_CHECKING:
    from mvcap_build.dataset import DatasetRoot
    from mvcap_build.dataset.records import FailureRecord

SHORT_DETAIL = 70  # characters of the detail in the table


def failures(
    root: Annotated[Path, typer.Argument(help="Dataset root.")],
    key: Annotated[
        str | None,
        typer.Argument(help="An object key (e.g. local/Duck.glb): its entry in full and the tail of its worker log."),
    ] = None,
    stage: Annotated[
        str | None, typer.Option(help="Only this stage's ledger: render | extract | caption | ...")
    ] = None,
    reason: Annotated[
        str | None, typer.Option(help="Only entries with this reason (e.g. import_failed, timeout).")
    ] = None,
    lines: Annotated[int, typer.Option(min=0, help="With KEY: how many lines of its worker log to show.")] = 40,
) -> None:
    """List the failures of ROOT, or one object's entry in full with its worker log.

    Without KEY: a table of the ledger entries (stage, key, reason, short detail, when) and the
    counts by reason. With KEY: its reason, full detail, the fingerprint of the settings it failed
    with, and the tail of what its Blender worker printed about it (across shards, from
    ROOT/logs/render). Nothing in ROOT is written.

    Rerun the stage with `--retry-failed` (and `--keys KEY` for just this one) to try again.

    Example: mvcap failures data/fx --reason import_failed
    """
    from mvcap_build.dataset import DatasetRoot

    with user_errors():
        dataset = DatasetRoot(root).ensure_exists()
        stages = _stages(dataset, stage)
        if key is None:
            _print_table(dataset, stages, reason)
        else:
            _print_entry(dataset, stages, key, lines)


def _stages(root: DatasetRoot, stage: str | None) -> list[str]:
    """The stages whose ledger is read, in pipeline order."""
    from mvcap_build.registry import STAGES

    if stage is not None:
        return [STAGES[stage.replace("-", "_")].name]  # an unknown name: one line naming the known ones
    return [name for name in STAGES if (root.path / "failures" / name).is_dir()]


def _entries(root: DatasetRoot, stages: list[str]) -> list[FailureRecord]:
    from mvcap_build.dataset import FailureLedger

    return [entry for name in stages for entry in sorted(FailureLedger(root, name), key=lambda e: e.key)]


def _print_table(root: DatasetRoot, stages: list[str], reason: str | None) -> None:
    from collections import Counter

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    entries = _entries(root, stages)
    shown = [entry for entry in entries if reason is None or entry.reason == reason]
    where = f"{root.path / 'failures'}" + (f"/{stages[0]}" if len(stages) == 1 else "")
    if not shown:
        if not entries:
            typer.echo(f"no failures recorded in {where}")
        else:
            typer.echo(
                f"no failures with reason {reason!r} in {where}; "
                f"reasons there: {_counts(Counter(e.reason for e in entries))}"
            )
        return
    console = Console(width=max(120, Console().width))
    table = Table(title=f"failures in {root.path}" + (f" with reason {reason}" if reason else ""), title_justify="left")
    table.add_column("stage")
    table.add_column("key", no_wrap=True, min_width=min(60, max(len(e.key) for e in shown)))
    table.add_column("reason", no_wrap=True)
    table.add_column("detail", no_wrap=True, overflow="ellipsis", max_width=SHORT_DETAIL)
    table.add_column("when (UTC)", no_wrap=True)
    for entry in shown:
        table.add_row(
            *(Text(cell) for cell in (entry.stage, entry.key, entry.reason, _short(entry.detail), _when(entry.time)))
        )
    console.print(table)
    for name in stages:
        counts = Counter(entry.reason for entry in shown if entry.stage == name)
        if counts:
            typer.echo(f"{name}: {sum(counts.values())} failed ({_counts(counts)})")
    typer.echo(f"`mvcap failures {root.path} KEY` shows an entry in full, with its worker log")


def _print_entry(root: DatasetRoot, stages: list[str], key: str, tail: int) -> None:
    import difflib

    from mvcap_build.dataset import FailureLedger
    from mvcap_build.errors import UserError
    from mvcap_build.render.worker_log import object_excerpts

    found = [entry for name in stages if (entry := FailureLedger(root, name).get(key)) is not None]
    if not found:
        known = [entry.key for entry in _entries(root, stages)]
        close = difflib.get_close_matches(key, known, n=3)
        hint = (
            f"; did you mean {', '.join(close)}?"
            if close
            else (f"; `mvcap failures {root.path}` lists the {len(known)} there" if known else "")
        )
        raise UserError(f"no failure entry for {key!r} in {root.path / 'failures'}{hint}")
    for entry in found:
        typer.echo(f"{entry.stage} failure of {entry.key}")
        typer.echo(f"  reason       {entry.reason}")
        typer.echo(f"  when         {_when(entry.time)} UTC")
        typer.echo(f"  fingerprint  {_fingerprint(entry)}")
        typer.echo(f"  entry        {root.failure(entry.stage, entry.key)}")
        typer.echo("detail:")
        for line in entry.detail.splitlines() or [""]:
            typer.echo(f"  {line}")
        logs = root.path / "logs" / entry.stage
        excerpts = object_excerpts(logs, entry.key, tail) if tail else []
        if not excerpts:
            if tail:
                typer.echo(f"worker log: no lines about {entry.key} under {logs}")
            continue
        shown = sum(len(excerpt.lines) for excerpt in excerpts)
        typer.echo(f"worker log: the last {min(shown, tail)} line(s) about {entry.key}:")
        budget = tail
        kept = []
        for excerpt in reversed(excerpts):  # the latest attempt first, then older ones while lines are left
            if budget <= 0:
                break
            kept.append((excerpt, excerpt.lines[-budget:]))
            budget -= len(kept[-1][1])
        for excerpt, text in reversed(kept):
            first = excerpt.first_line + len(excerpt.lines) - len(text)
            typer.echo(f"--- {_relative(root, excerpt.path)}, lines {first}-{first + len(text) - 1}")
            for line in text:
                typer.echo(line)


def _short(detail: str) -> str:
    """One line of the detail: a traceback's last line (the exception), else its first line."""
    text = [line.strip() for line in detail.splitlines() if line.strip()]
    if not text:
        return ""
    line = text[-1] if text[0].startswith("Traceback") else text[0]
    return line if len(line) <= SHORT_DETAIL else line[: SHORT_DETAIL - 1] + "…"


def _when(time: str) -> str:
    try:
        return dt.datetime.fromisoformat(time).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return time


def _fingerprint(entry: FailureRecord, fields: int = 12) -> str:
    if entry.fingerprint is None:
        return "(none recorded)"
    items = list(entry.fingerprint.fields.items())
    more = f", ... (+{len(items) - fields} more)" if len(items) > fields else ""
    return (
        f"{entry.fingerprint.digest} ({len(items)} fields: "
        + ", ".join(f"{k}={v}" for k, v in items[:fields])
        + more
        + ")"
    )


def _counts(counts) -> str:
    return ", ".join(f"{reason}: {n}" for reason, n in counts.most_common())


def _relative(root: DatasetRoot, path: Path) -> str:
    try:
        return root.relative(path)
    except ValueError:
        return str(path)
