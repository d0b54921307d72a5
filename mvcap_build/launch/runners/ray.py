"""Shards as Ray tasks (render, extract, export, train) and captioning as one actor per GPU.

A task runs one shard process with the stage's `num_cpus` / `num_gpus` / `memory`. Ray reruns
it when its worker or node is lost (`retries`, default 3), and so do we when the shard process
itself is killed by a signal; a shard that fails on its own (a user error, a bug) is reported,
never retried. More shards than workers make dynamic batches: free workers take the next shard,
so long and short objects balance out (`benchmarks/ray_batches.py` measures it).

Captioning keeps one model loaded per actor (`CaptionActor`, one per `gpus` GPUs) and feeds it
shard after shard, instead of loading the model once per shard. Actors live in the driver's
environment; a caption stage that runs in another environment (`python:` set, e.g. vLLM's)
runs as tasks instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import ray

from mvcap_build.errors import EnvironmentBroken
from mvcap_build.launch.process import ShardSpec, run_shard_process
from mvcap_build.launch.runners.base import Runner, ShardEnd, command_lines, describe_exit
from mvcap_build.launch.stages import LaunchStage

DEFAULT_RETRIES = 3


class ShardCrashed(RuntimeError):
    """The shard process died from a signal (OOM killer, a lost device): worth another try."""


def _shard_task(spec: ShardSpec) -> int:
    code = run_shard_process(spec, job=f"ray:{ray.get_runtime_context().get_task_id()}")
    if code < 0:
        raise ShardCrashed(f"{spec.label} was killed by signal {-code}")
    return code


class CaptionActor:
    """One caption backend, loaded once, captioning the shards it is given one after another."""

    def __init__(self) -> None:
        self.backend = None  # loaded by the first shard, inside it, so a model that cannot load is that shard's failure

    def _stage(self, config, options):
        from mvcap_build.caption.stage import CaptionStage, create_backend

        if self.backend is None:
            self.backend = create_backend(config)
        return CaptionStage(config, options, self.backend, backend_from_config=True)

    def run(self, spec: ShardSpec) -> int:
        from mvcap_build.errors import UserError
        from mvcap_build.launch.shard import run_shard
        from mvcap_build.pipeline.stage import Redo, RunOptions

        options = RunOptions(redo=Redo(spec.redo), retry_failed=spec.retry_failed)
        log = Path(spec.log)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            print(f"\n==== {spec.label} in caption actor {os.getpid()} (model loaded once)", flush=True)
            try:
                run_shard(
                    Path(spec.pipeline), "caption", spec.shard, spec.num_shards, options=options, make_stage=self._stage
                )
            except UserError as error:
                print(f"error: {error}", flush=True)
                return 2
            except Exception:  # noqa: BLE001 - a bug: the marker and this log keep the traceback
                import traceback

                traceback.print_exc()
                return 1
            print(f"==== {spec.label}: exit 0", flush=True)
        return 0


class RayRunner(Runner):
    kind = "ray"

    def __init__(self, config, root) -> None:
        super().__init__(config, root)
        self._pending: dict[int, tuple[ShardSpec, int]] = {}  # shard -> (spec, tries left)
        self._refs: dict = {}  # ObjectRef -> shard
        self._queue: list[ShardSpec] = []
        self._stage: LaunchStage | None = None
        self._actors: list = []
        self._idle_actors: list = []
        self._actor_of: dict = {}
        self._connected = False

    # connection ------------------------------------------------------------------------------
    def _connect(self) -> None:
        if self._connected:
            return
        address = self.config.ray_address
        extra = {}
        if address is None:
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local cluster listens on 127.0.0.1 only
            extra["include_dashboard"] = False
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level="WARNING", **extra)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise EnvironmentBroken(f"runner ray: cannot reach the Ray cluster at {address!r}: {error}") from None
        self._connected = True

    def close(self) -> None:
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self._actors.clear()
        if self._connected:
            ray.shutdown()
            self._connected = False

    # submission ------------------------------------------------------------------------------
    def _options(self, stage: LaunchStage) -> dict:
        r = stage.resources
        options: dict = {"num_cpus": r.cpus or 1, "num_gpus": r.gpus or 0}
        if r.mem_gb:
            options["memory"] = int(r.mem_gb * 1024**3)
        return options

    def _uses_actors(self, stage: LaunchStage) -> bool:
        return (
            stage.name == "caption"
            and not stage.resources.image
            and Path(stage.python).resolve() == Path(sys.executable).resolve()
        )

    def _actor_count(self, stage: LaunchStage) -> int:
        if stage.resources.array_parallelism:
            return min(stage.resources.array_parallelism, stage.num_shards)
        gpus = int(ray.cluster_resources().get("GPU", 0)) if self._connected else 0
        per = stage.resources.gpus or 0
        return max(1, min(stage.num_shards, gpus // per if per and gpus else 1))

    def describe(self, stage: LaunchStage, specs: list[ShardSpec]) -> str:
        options = self._options(stage)
        retries = stage.resources.retries if stage.resources.retries is not None else DEFAULT_RETRIES
        where = self.config.ray_address or "a local Ray instance started here"
        if self._uses_actors(stage):
            head = (
                f"{stage.name}: {len(specs)} shard(s) fed to caption actors (one backend each, {options}, "
                f"one per {stage.resources.gpus or 0} GPU(s) of the cluster) on {where}"
            )
        else:
            head = (
                f"{stage.name}: {len(specs)} Ray task(s) on {where}, each {options}, "
                f"retried {retries}x on a lost worker or node"
            )
        deadline = f"; deadline {stage.resources.time_min:g} min per shard" if stage.resources.time_min else ""
        return "\n".join([head + deadline, *command_lines(specs)])

    def submit(self, stage: LaunchStage, specs: list[ShardSpec]) -> dict[int, str]:
        self._connect()
        self._stage = stage
        retries = stage.resources.retries if stage.resources.retries is not None else DEFAULT_RETRIES
        self._queue = list(specs)
        self._pending = {spec.shard: (spec, retries) for spec in specs}
        self._refs = {}
        if self._uses_actors(stage):
            actor_class = ray.remote(max_restarts=retries, max_task_retries=retries)(CaptionActor)
            self._actors = [
                actor_class.options(**self._options(stage)).remote() for _ in range(self._actor_count(stage))
            ]
            self._idle_actors = list(self._actors)
        self._fill()
        return {spec.shard: "ray" for spec in specs}

    def _fill(self) -> None:
        """Start queued shards while there is room (array_parallelism, or a free actor)."""
        stage = self._stage
        limit = stage.resources.array_parallelism or len(self._pending) or 1
        while self._queue:
            if self._actors:
                if not self._idle_actors:
                    return
                actor = self._idle_actors.pop()
                spec = self._queue.pop(0)
                ref = actor.run.remote(spec)
                self._actor_of[ref] = actor
            else:
                if len(self._refs) >= limit:
                    return
                spec = self._queue.pop(0)
                task = ray.remote(_shard_task).options(
                    max_retries=self._pending[spec.shard][1], retry_exceptions=[ShardCrashed], **self._options(stage)
                )
                ref = task.remote(spec)
            self._refs[ref] = spec.shard

    # waiting ---------------------------------------------------------------------------------
    def wait(
        self, stage: LaunchStage, is_finished: Callable[[int], bool], echo: Callable[[str], None]
    ) -> dict[int, ShardEnd]:
        ends: dict[int, ShardEnd] = {}
        last_report = time.monotonic()
        while self._refs:
            ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=self.config.poll_s)
            for ref in ready:
                shard = self._refs.pop(ref)
                actor = self._actor_of.pop(ref, None)
                try:
                    ends[shard] = ShardEnd(shard, describe_exit(ray.get(ref)), "ray")
                except ray.exceptions.RayError as error:  # lost worker or node after every retry, or a crash
                    ends[shard] = ShardEnd(
                        shard, f"ray: {type(error).__name__}: {str(error).splitlines()[0][:300]}", "ray"
                    )
                if actor is not None:
                    self._idle_actors.append(actor)
                self._fill()
            if self._refs and time.monotonic() - last_report > max(60.0, self.config.poll_s):
                echo(f"{stage.name}: {len(ends)} ended, {len(self._refs)} running, {len(self._queue)} queued")
                last_report = time.monotonic()
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self._actors, self._idle_actors = [], []
        return ends
