"""The messages between the render host and a Blender worker, one JSON line each.

Plain dataclasses (no pydantic): the worker may run in a separate Blender interpreter that has
only bpy, numpy and this package on its path. Every line carries its `type`, so either side can
tell a reply from a greeting and fail with a clear message on anything else.

  host -> worker   RenderJob, one at a time
  worker -> host   Ready once, or Fatal (no bpy) and exit; then one Rendered or RenderFailed per job
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar


class ProtocolError(ValueError):
    """A line that is not one of the messages below (a worker printing on the protocol stream)."""


@dataclass(frozen=True)
class RenderJob:
    """Everything a worker needs to render one object (built by `render/jobs.py`)."""

    type: ClassVar[str] = "job"
    key: str
    asset: dict[str, Any]  # {"kind": "file", "path", "up_axis"} or {"kind": "procedural", "builder", "seed"}
    out_dir: str  # the object's staging folder; the worker writes `views[i]["file"]` there
    views: list[dict[str, Any]]  # planned cameras at distance 1 (`jobs.plan_views`)
    lighting: dict[str, Any]
    framing: dict[str, Any]  # how the worker picks the camera distance (`jobs.framing_spec`)
    settings: dict[str, Any]  # the scene settings (`jobs.worker_settings`)


@dataclass(frozen=True)
class Ready:
    type: ClassVar[str] = "ready"
    blender: str
    pid: int


@dataclass(frozen=True)
class Fatal:
    """The worker cannot work at all (no bpy): the run stops with `detail`."""

    type: ClassVar[str] = "fatal"
    detail: str


@dataclass(frozen=True)
class Rendered:
    type: ClassVar[str] = "rendered"
    key: str
    renderer: dict[str, Any]  # engine, samples, device, Blender version: the manifest's producer
    framing: dict[str, Any]  # the distance the cameras stood at, and why
    stats: dict[str, Any] = field(default_factory=dict)  # what the asset held and what was cleaned
    info: dict[str, Any] = field(default_factory=dict)  # timings, for the worker log


@dataclass(frozen=True)
class RenderFailed:
    """One object failed (`reason` is the ledger code); `fatal`: the device itself is unusable."""

    type: ClassVar[str] = "failed"
    key: str
    reason: str
    detail: str
    fatal: bool = False


Message = RenderJob | Ready | Fatal | Rendered | RenderFailed
Reply = Rendered | RenderFailed
_BY_TYPE: dict[str, type] = {cls.type: cls for cls in (RenderJob, Ready, Fatal, Rendered, RenderFailed)}


def encode(message: Message) -> str:
    """One line of JSON, with the message's type."""
    return json.dumps({"type": message.type, **asdict(message)}) + "\n"


def decode(line: str) -> Message:
    try:
        data = json.loads(line)
        cls = _BY_TYPE[data.pop("type")]
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ProtocolError(f"not a worker message: {line.strip()[:200]!r} ({error})") from None
