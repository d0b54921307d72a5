"""`mvcap caption-report`: how consistent a root's captions are, alone or beside another root's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mvcap_build.cli.common import user_errors
from mvcap_build.cli.output import quiet_libraries


def caption_report(
    root: Annotated[Path, typer.Argument(help="Dataset root with captions.")],
    compare: Annotated[
        Path | None,
        typer.Option(help="Another root captioned differently (e.g. the plain prompt on the same views)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the report(s) as JSON here.")
    ] = None,
) -> None:
    """Per root: how many views name the category, how alike an object's captions are across
    views (mean pairwise sentence-embedding similarity), tries per view, gate failures by reason.

    Example, MVCap's category-guided prompt against the plain one on the same views:
    mvcap caption-report data/guided --compare data/plain
    """
    from rich.console import Console
    from rich.table import Table

    from mvcap_build.caption.config import GatesConfig
    from mvcap_build.caption.gates import Gates
    from mvcap_build.caption.report import caption_report as build_report
    from mvcap_build.dataset import DatasetRoot

    with user_errors():
        quiet_libraries()
        gates = Gates(GatesConfig())
        reports = [
            build_report(DatasetRoot(path).ensure_exists(), gates) for path in ([root, compare] if compare else [root])
        ]
        table = Table(title="caption consistency", title_justify="left")
        table.add_column("")
        for report in reports:
            table.add_column(Path(report["root"]).name)
        rows = [
            ("objects", "objects"),
            ("views", "views"),
            ("prompts", "prompts"),
            ("models", "models"),
            ("views naming the category", "naming_category"),
            ("cross-view similarity", "cross_view_similarity"),
            ("tries per view", "mean_tries"),
            ("gate failures", "gate_failures"),
        ]
        for label, field in rows:
            table.add_row(label, *(_cell(report[field]) for report in reports))
        Console(width=120).print(table)
        if output is not None:
            output.write_text(json.dumps(reports if compare else reports[0], indent=1))
            typer.echo(f"report written to {output}")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "0"
    if isinstance(value, list):
        return ", ".join(value)
    return "-" if value is None else str(value)
