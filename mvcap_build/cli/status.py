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
    from mvcap_build.dataset.layout import OBJECT_STAGES
    from mvcap_build.dataset.status import root_status
    from mvcap_build.errors import ManifestError
    from mvcap_build.launch.status import describe as describe_shards
    from mvcap_build.pipeline.stale import stale_counts

    root = DatasetRoot(root_path).ensure_exists()
    console = Console(width=max(120, Console().width))  # the details column whole in a pipe
    try:
        s = root_status(root)
    except ManifestError:  # the shards still say which job tripped on it
        for line in describe_shards(root.path):
            console.print(line, highlight=False)
        raise
    stale = stale_counts(root)
    total = sum(s.objects_by_source.values())
    table = Table(title=f"mvcap dataset at {root.path}", title_justify="left")
    for column in ("stage", "objects", "views", "failures", "stale", "details"):
        table.add_column(column)
    sources = ", ".join(f"{src}: {n}" for src, n in sorted(s.objects_by_source.items()))
    table.add_row("objects", f"{total} ({sources})" if total else "0", "", "", "", "")
    for name, counts in s.stages():
        if not counts.objects and not counts.failures and stale.get(name, "-") == "-":
            continue  # a stage this root never ran (an extracted root has no render row)
        failures = ", ".join(f"{reason}: {n}" for reason, n in counts.failures.most_common()) or "0"
        table.add_row(name, str(counts.objects), str(counts.views), failures, stale.get(name, "-"), "")
    if s.export:
        table.add_row(
            "export",
            str(s.export["objects"]),
            str(s.export["views"]),
            "",
            "",
            f"{len(s.export['parquet_files'])} parquet file(s)",
        )
    else:
        table.add_row("export", "-", "-", "", "", "not exported yet")
    checkpoints = sorted(root.path.glob("train/*/checkpoints/step-*"))
    if checkpoints:
        table.add_row("train", "", "", "", "", f"latest checkpoint: {root.relative(checkpoints[-1])}")
    console.print(table)
    if s.categories:
        console.print("categories: " + ", ".join(f"{c} ({n})" for c, n in sorted(s.categories.items())))
    for stage in OBJECT_STAGES:
        folder = root.path / "failures" / stage
        if folder.is_dir() and any(folder.iterdir()):
            console.print(f"{stage} failure reasons are in {folder}")
    for line in describe_shards(root.path):
        console.print(line, highlight=False)
    if any(n not in ("0", "-") for n in stale.values()):
        console.print("stale: units made with other settings than the stage's latest run; `--redo stale` redoes them")


def status(root: Annotated[Path, typer.Argument(help="Dataset root.")]) -> None:
    """Print objects, views, captions, failures and stale units per stage for a dataset root,
    and the shards of its latest `mvcap launch` (done, running, failed, not started).

    Stale units were made with other settings than the stage's latest run (for example captions
    of views that were re-rendered since); rerun the stage with `--redo stale` to redo them.
    """
    with user_errors():
        print_status(root)
