"""The `mvcap` command line. One module per command; each imports its stage only when run,
so `mvcap --help` starts fast and never imports bpy, torch or vLLM."""

from __future__ import annotations

import platform
from typing import Annotated

import typer

from mvcap_build.cli.build import build
from mvcap_build.cli.caption import caption
from mvcap_build.cli.caption_report import caption_report
from mvcap_build.cli.config import config_app
from mvcap_build.cli.eval import eval_command
from mvcap_build.cli.export import export
from mvcap_build.cli.extract import extract
from mvcap_build.cli.failures import failures
from mvcap_build.cli.group import MvcapGroup
from mvcap_build.cli.launch import launch, run_shard
from mvcap_build.cli.plan import plan
from mvcap_build.cli.preview import preview
from mvcap_build.cli.render import render
from mvcap_build.cli.status import status
from mvcap_build.cli.train_ovt import train_ovt

app = typer.Typer(
    name="mvcap",
    help="Build multi-view image-caption datasets (MVCap-style) and fine-tune CLIP on them (Omniview-Tuning).",
    cls=MvcapGroup,
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",  # docstrings reflow: one paragraph per blank-line block; write <text> as `<text>`
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("mvcap-build")
        except PackageNotFoundError:  # run from a source tree that is not installed
            from mvcap_build import __version__ as installed
        typer.echo(f"mvcap-build {installed} (Python {platform.python_version()})")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the mvcap-build and Python versions and exit.",
        ),
    ] = False,
) -> None:
    pass


app.command("build")(build)
app.command("render")(render)
app.command("extract")(extract)
app.command("caption")(caption)
app.command("caption-report")(caption_report)
app.command("export")(export)
app.command("train-ovt")(train_ovt)
app.command("eval")(eval_command)
app.command("status")(status)
app.command("failures")(failures)
app.add_typer(config_app, name="config")
app.command("launch")(launch)
app.command("run-shard")(run_shard)
app.command("plan")(plan)
app.command("preview")(preview)


def main() -> None:
    app()
