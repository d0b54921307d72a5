"""What launch asks of a runner: describe, submit, wait. The runner never learns what a stage does."""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from mvcap_build.launch.config import RunnerConfig
from mvcap_build.launch.process import TIMEOUT_EXIT, ShardSpec
from mvcap_build.launch.stages import LaunchStage


@dataclass(frozen=True)
class ShardEnd:
    """How a shard's job ended, in the scheduler's words; the marker (if any) says the rest."""

    shard: int
    how: str  # "exit 0", "exit 2", "killed by signal 9", "CANCELLED", "worker lost: ...", ...
    job: str = ""


def describe_exit(code: int) -> str:
    if code == TIMEOUT_EXIT:
        return "past its deadline (time_min)"
    return f"killed by signal {-code}" if code < 0 else f"exit {code}"


def command_lines(specs: list[ShardSpec], prefix: str = "  ", show: int = 4) -> list[str]:
    """The shard commands, the first and last few of a long list."""
    lines = [f"{prefix}{shlex.join(spec.command)}" for spec in specs]
    if len(lines) > 2 * show:
        lines = lines[:show] + [f"{prefix}... ({len(lines) - 2 * show} more, one per shard)"] + lines[-show:]
    return lines


class Runner(ABC):
    kind: str
    enforces_time_limit = False  # the scheduler stops a shard at `time_min` itself (Slurm --time)

    def __init__(self, config: RunnerConfig, root) -> None:
        self.config = config
        self.root = root

    @abstractmethod
    def describe(self, stage: LaunchStage, specs: list[ShardSpec]) -> str:
        """What `submit` would do, for --dry-run: nothing is started."""

    @abstractmethod
    def submit(self, stage: LaunchStage, specs: list[ShardSpec]) -> dict[int, str]:
        """Start the shards; their job ids by shard (for status and for a relaunch)."""

    @abstractmethod
    def wait(
        self, stage: LaunchStage, is_finished: Callable[[int], bool], echo: Callable[[str], None]
    ) -> dict[int, ShardEnd]:
        """Block until every submitted shard has ended; `is_finished(shard)` is true once its
        marker exists. Returns how each one ended."""

    def alive(self, jobs: dict[int, str]) -> dict[int, str]:
        """Of the jobs a previous launch submitted, those still queued or running (to wait for
        them instead of submitting their shards twice). Runners without such memory: none."""
        return {}

    def adopt(self, stage: LaunchStage, jobs: dict[int, str]) -> None:
        """Wait for these already-running jobs as if this launch had submitted them."""

    def close(self) -> None:
        """Release what the runner holds (a Ray connection)."""
