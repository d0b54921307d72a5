"""`mvcap preview`: a static HTML gallery of a dataset root, to look at before exporting."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mvcap_build.cli.common import Quiet, user_errors


def preview(
    root: Annotated[Path, typer.Argument(help="Dataset root.")],
    out: Annotated[Path | None, typer.Option(help="Folder to write the gallery to. Default ROOT/preview.")] = None,
    page_size: Annotated[int, typer.Option(min=1, help="Objects per page.")] = 50,
    thumb_size: Annotated[int, typer.Option(min=16, max=1024, help="Pixels per side of a view's thumbnail.")] = 128,
    workers: Annotated[int, typer.Option(min=0, help="Processes making thumbnails; 0: one per CPU core.")] = 0,
    quiet: Quiet = False,
) -> None:
    """Write a static HTML gallery of ROOT: open `index.html` from disk, no server needed.

    Per object: its views as thumbnails labelled with azimuth and elevation, its category, every
    caption with how many tries the quality gates took, and every failure with its reason and
    detail, including objects that have no views. Filter by category, by failure (any, or of one
    stage), by key; the address keeps the page and filters, so it can be bookmarked.

    Rerunning reuses the thumbnails of views that did not change and replaces the page only once
    the new one is complete.
    """
    from mvcap_build.dataset import DatasetRoot
    from mvcap_build.preview import PreviewSettings, build_preview

    with user_errors():
        dataset = DatasetRoot(root).ensure_exists()
        settings = PreviewSettings(
            out=out or dataset.path / "preview", page_size=page_size, thumb_size=thumb_size, workers=workers
        )
        summary = build_preview(dataset, settings, show_progress=not quiet)
        typer.echo(summary.line())
        typer.echo(f"open {summary.page.as_uri()}")
