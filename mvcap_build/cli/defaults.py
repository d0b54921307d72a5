"""The defaults that `--help` shows for stage flags, read from the stage's config model.

A stage flag defaults to None so that a value from `--config` wins unless the flag is given; the
value used when neither sets it is the config field's default, so that is the one help shows,
and the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, get_args

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def config_default(model: type[BaseModel], path: str) -> Any:
    """The default of the dotted field `path` of `model`, e.g. "views.num_views".

    A nested field's default is read from its section's default (the instance a default_factory
    makes), or, where the section defaults to None, from the section's own model."""
    name, _, rest = path.partition(".")
    field = model.model_fields[name]
    default = field.get_default(call_default_factory=True)
    if default is PydanticUndefined:
        raise ValueError(f"{model.__name__}.{name} has no default")
    if not rest:
        return default
    if isinstance(default, BaseModel):
        for part in rest.split("."):
            default = getattr(default, part)
        return default
    sections = [t for t in get_args(field.annotation) if isinstance(t, type) and issubclass(t, BaseModel)]
    if len(sections) != 1:
        raise ValueError(f"{model.__name__}.{name} has no single section model to read {rest!r} from")
    return config_default(sections[0], rest)


def shown(value: Any) -> str:
    """A default as help writes it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, (list, tuple)):
        return ", ".join(shown(v) for v in value)
    return str(value)


def with_default(help: str, model: type[BaseModel], path: str) -> str:
    """`help` followed by the config's default for the flag, e.g. "Views per object.  [default: 12]"."""
    return _append(help, config_default(model, path))


def with_defaults(help: str, fields: Mapping[str, tuple[type[BaseModel], str]]) -> str:
    """`help` followed by one default per label (e.g. per caption backend: "[default: hf 8, vllm 256]"),
    or by the one value where they all agree."""
    values = {label: config_default(model, path) for label, (model, path) in fields.items()}
    if len({shown(v) for v in values.values()}) == 1:
        return _append(help, next(iter(values.values())))
    return f"{help}  [default: {', '.join(f'{label} {shown(v)}' for label, v in values.items())}]"


def _append(help: str, value: Any) -> str:
    return help if value is None else f"{help}  [default: {shown(value)}]"
