"""`mvcap status`: what a dataset root holds, stage by stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mvcap_build.cli.common import user_errors


def print_status(root_path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from mvcap_build.dataset import DatasetRoot
    from mvcap_build.dataset.status import root_status

    root = DatasetRoot(root_path)
    s = root_status(root)
    total = sum(s.objects_by_source.values())
    table = Table(title=f"mvcap dataset at {root.path}", title_justify="left")
    for column in ("stage", "objects", "views", "failures"):
        table.add_column(column)
    sources = ", ".join(f"{src}: {n}" for src, n in sorted(s.objects_by_source.items()))
    table.add_row("objects", f"{total} ({sources})" if total else "0", "", "")
    for name, counts in (("render", s.render), ("caption", s.caption)):
        failures = ", ".join(f"{reason}: {n}" for reason, n in counts.failures.most_common()) or "0"
        table.add_row(name, str(counts.objects), str(counts.views), failures)
    if s.export:
        table.add_row("export", str(s.export["objects"]), str(s.export["views"]), f"{len(s.export['parquet_files'])} parquet file(s)")
    else:
        table.add_row("export", "-", "-", "not exported yet")
    checkpoints = sorted(root.path.glob("train/*/checkpoints/step-*"))
    if checkpoints:
        table.add_row("train", "", "", f"latest checkpoint: {root.relative(checkpoints[-1])}")
    console = Console(width=max(100, Console().width))
    console.print(table)
    if s.categories:
        console.print("categories: " + ", ".join(f"{c} ({n})" for c, n in sorted(s.categories.items())))
    for stage in ("render", "caption"):
        folder = root.path / "failures" / stage
        if folder.is_dir() and any(folder.iterdir()):
            console.print(f"{stage} failure reasons are in {folder}")


def status(root: Annotated[Path, typer.Argument(help="Dataset root.")]) -> None:
    """Print objects, views, captions and failures per stage for a dataset root."""
    with user_errors():
        if not root.is_dir():
            raise FileNotFoundError(f"no dataset root at {root}")
        print_status(root)
