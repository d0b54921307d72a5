"""`mvcap config show`: the settings a stage would run with, as YAML."""

from __future__ import annotations

from typing import Annotated

import typer

from mvcap_build.cli.common import ConfigFile, user_errors

config_app = typer.Typer(
    help="Inspect settings: `mvcap config show STAGE --config FILE` prints what a stage would run with.",
    no_args_is_help=True,
)


@config_app.command("show")
def show(
    stage: Annotated[str, typer.Argument(help="render | extract | caption | export | hub | train_ovt.")],
    config: ConfigFile = None,
) -> None:
    """Print the settings STAGE would run with, as YAML: its defaults merged with the file.

    The file is read as the stage command reads `--config`: a pipeline file gives its section for
    STAGE, any other file is that stage's settings alone. Flags given to the stage command would
    go on top of this.

    Example: mvcap config show render --config pipelines/demo.yaml
    """
    from mvcap_build.cli.common import stage_config
    from mvcap_build.config_io import dump_yaml
    from mvcap_build.registry import STAGES

    with user_errors():
        name = STAGES[stage.replace("-", "_")].name  # an unknown stage: one line naming the known ones
        settings = stage_config(name, config, {})  # what the stage command reads, before its flags
        origin = f"defaults merged with {config}" if config is not None else "defaults (no --config)"
        typer.echo(f"# {name}: {origin}")
        typer.echo(dump_yaml(settings), nl=False)
