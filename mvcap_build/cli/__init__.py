"""The `mvcap` command line. One module per command; each imports its stage only when run,
so `mvcap --help` starts fast and never imports bpy, torch or vLLM."""

from __future__ import annotations

import typer

from mvcap_build.cli.build import build
from mvcap_build.cli.caption import caption
from mvcap_build.cli.caption_report import caption_report
from mvcap_build.cli.eval import eval_command
from mvcap_build.cli.export import export
from mvcap_build.cli.launch import launch, run_shard
from mvcap_build.cli.plan import plan
from mvcap_build.cli.extract import extract
from mvcap_build.cli.preview import preview
from mvcap_build.cli.render import render
from mvcap_build.cli.status import status
from mvcap_build.cli.train_ovt import train_ovt

app = typer.Typer(
    name="mvcap",
    help="Build multi-view image-caption datasets (MVCap-style) and fine-tune CLIP on them (Omniview-Tuning).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",  # docstrings reflow: one paragraph per blank-line block
)
app.command("build")(build)
app.command("render")(render)
app.command("extract")(extract)
app.command("caption")(caption)
app.command("caption-report")(caption_report)
app.command("export")(export)
app.command("train-ovt")(train_ovt)
app.command("eval")(eval_command)
app.command("status")(status)
app.command("launch")(launch)
app.command("run-shard")(run_shard)
app.command("plan")(plan)
app.command("preview")(preview)


def main() -> None:
    app()
