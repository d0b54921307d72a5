"""The `mvcap` command group: how every command's `--help` reads.

Typer's rich help prints a value type beside every option, flags included (`--quiet <bool>`),
though a flag takes no value; the group blanks it on every flag of every command it holds
(theirs, the help and completion flags, and those of nested groups).
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup


class MvcapGroup(TyperGroup):
    def get_params(self, ctx: typer.Context) -> list[Any]:
        return _untyped_flags(super().get_params(ctx))

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _untype_tree(command, ctx)
        return command


def _untype_tree(command: Any, ctx: typer.Context) -> None:
    _untyped_flags(command.get_params(ctx))
    for sub in getattr(command, "commands", {}).values():
        _untype_tree(sub, ctx)


def _untyped_flags(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""  # what help prints in the type column
    return params
