"""Shards as processes on this machine, `array_parallelism` at a time (default 1)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from mvcap_build.launch.process import ShardSpec, kill_shard, run_shard_process
from mvcap_build.launch.runners.base import Runner, ShardEnd, command_lines, describe_exit
from mvcap_build.launch.stages import LaunchStage


class LocalRunner(Runner):
    kind = "local"

    def __init__(self, config, root) -> None:
        super().__init__(config, root)
        self._futures: dict[int, Future] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._processes: list = []

    def describe(self, stage: LaunchStage, specs: list[ShardSpec]) -> str:
        at_once = stage.resources.array_parallelism or 1
        lines = [f"{stage.name}: {len(specs)} shard(s) as local processes, {at_once} at a time"]
        lines += command_lines(specs)
        return "\n".join(lines)

    def submit(self, stage: LaunchStage, specs: list[ShardSpec]) -> dict[int, str]:
        self._pool = ThreadPoolExecutor(max_workers=stage.resources.array_parallelism or 1)
        self._futures = {
            spec.shard: self._pool.submit(run_shard_process, spec, "", self._processes.append) for spec in specs
        }
        return {shard: "local" for shard in self._futures}

    def wait(
        self, stage: LaunchStage, is_finished: Callable[[int], bool], echo: Callable[[str], None]
    ) -> dict[int, ShardEnd]:
        ends = {}
        try:
            for shard, future in self._futures.items():
                ends[shard] = ShardEnd(shard, describe_exit(future.result()))
        except BaseException:  # Ctrl-C: the shards are in their own sessions, so stop them here
            for future in self._futures.values():
                future.cancel()
            for process in self._processes:
                kill_shard(process)
            raise
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
        return ends
