"""Shards as Slurm job arrays, submitted through submitit.

One array per stage, split below the cluster's MaxArraySize, `%array_parallelism` at a time.
Each array task runs one shard (`ShardJob`, a submitit `Checkpointable`): on preemption or when
the time limit nears (`--signal=USR2@90`), submitit requeues it, and the shard resumes from its
committed units. Launch submits stage N+1 only after stage N's shards all have markers, so a
failed shard never leaves a dependent job pending forever.

Job states come from one `squeue` call per poll (every `runner.poll_s`), never from sacct, so a
launch works without accounting and stays far below the controller's RPC limits.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import submitit
from submitit.slurm import slurm as submitit_slurm

from mvcap_build.errors import EnvironmentBroken
from mvcap_build.launch.process import ShardSpec, run_shard_process
from mvcap_build.launch.runners.base import Runner, ShardEnd, command_lines
from mvcap_build.launch.squeue import ALIVE, GONE, UNKNOWN, job_states
from mvcap_build.launch.stages import LaunchStage


class ShardJob(submitit.helpers.Checkpointable):
    """What one array task runs. `checkpoint` (inherited) resubmits the same call on preemption
    or timeout; nothing else needs saving, because the stage resumes from committed units."""

    def __call__(self, spec: ShardSpec) -> int:
        from mvcap_build.launch.shard import job_id

        return run_shard_process(spec, job=job_id())


class SlurmRunner(Runner):
    kind = "slurm"
    enforces_time_limit = True  # --time, with USR2 90 s before it: submitit requeues the shard

    def __init__(self, config, root) -> None:
        super().__init__(config, root)
        self.folder = Path(config.slurm_folder or Path(root) / "logs" / "launch" / "slurm").resolve()
        self._jobs: dict[int, str] = {}

    # submission --------------------------------------------------------------------------------
    def parameters(self, stage: LaunchStage, count: int) -> dict:
        r = stage.resources
        parameters: dict = {
            "job_name": f"mvcap-{stage.name}",
            "time": int(r.time_min or 60 * 24),
            "cpus_per_task": r.cpus or 1,
            "signal_delay_s": 90,
            "array_parallelism": min(r.array_parallelism or count, count) or 1,
            "stderr_to_stdout": True,
        }
        if r.gpus:  # training on several: one task, and accelerate starts a process per GPU
            parameters["gpus_per_node"] = r.gpus
        for name in ("partition", "account", "qos"):
            if getattr(r, name):
                parameters[name] = getattr(r, name)
        if r.mem_gb:
            parameters["mem"] = f"{int(r.mem_gb * 1024)}M"
        if self.config.slurm_extra:
            parameters["additional_parameters"] = dict(self.config.slurm_extra)
        return parameters

    def max_array_size(self) -> int:
        """Slurm refuses arrays with an index >= MaxArraySize (default 1001): stay below it."""
        if self.config.slurm_max_array_size:
            return self.config.slurm_max_array_size
        try:
            output = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            return 1000
        for line in output.splitlines():
            if line.strip().startswith("MaxArraySize"):
                return max(1, int(line.split("=")[1].strip()) - 1)
        return 1000

    def describe(self, stage: LaunchStage, specs: list[ShardSpec]) -> str:
        chunk = self.max_array_size()
        arrays = [specs[i : i + chunk] for i in range(0, len(specs), chunk)]
        lines = [
            f"{stage.name}: {len(specs)} shard(s) in {len(arrays)} Slurm job array(s) "
            f"(MaxArraySize allows {chunk} per array)"
        ]
        for number, array in enumerate(arrays):
            script = submitit_slurm._make_sbatch_string(
                command=f"{shlex.quote(sys.executable)} -u -m submitit.core._submit {self.folder / stage.name / '%j'}",
                folder=self.folder / stage.name / "%j",
                map_count=len(array),
                **self.parameters(stage, len(array)),
            )
            lines += [f"--- array {number + 1}: sbatch script (submitit) ---", script.rstrip()]
            lines += [f"--- array {number + 1}: what each task runs ---"]
            lines += command_lines(array, prefix="  task: ")
        return "\n".join(lines)

    def submit(self, stage: LaunchStage, specs: list[ShardSpec]) -> dict[int, str]:
        self._check_slurm()
        executor = submitit.SlurmExecutor(folder=self.folder / stage.name / "%j", max_num_timeout=3)
        chunk = self.max_array_size()
        jobs: dict[int, str] = {}
        for start in range(0, len(specs), chunk):
            array = specs[start : start + chunk]
            executor.update_parameters(**self.parameters(stage, len(array)))
            with executor.batch():
                submitted = [(spec.shard, executor.submit(ShardJob(), spec)) for spec in array]
            jobs.update({shard: job.job_id for shard, job in submitted})
        self._jobs = dict(jobs)
        return jobs

    def adopt(self, stage: LaunchStage, jobs: dict[int, str]) -> None:
        self._jobs.update(jobs)

    def _check_slurm(self) -> None:
        try:
            result = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise EnvironmentBroken("runner slurm: `sinfo` is not on PATH; run launch on a Slurm login node") from None
        except subprocess.TimeoutExpired:
            raise EnvironmentBroken("runner slurm: the Slurm controller does not answer (sinfo timed out)") from None
        if result.returncode != 0:
            raise EnvironmentBroken(f"runner slurm: sinfo failed: {result.stderr.strip() or result.stdout.strip()}")

    # waiting -----------------------------------------------------------------------------------
    def alive(self, jobs: dict[int, str]) -> dict[int, str]:
        jobs = {shard: job for shard, job in jobs.items() if job not in ("local", "ray")}
        if not jobs:
            return {}
        states = job_states(jobs.values())
        return {shard: job for shard, job in jobs.items() if states[job] in ALIVE or states[job] == UNKNOWN}

    def wait(
        self, stage: LaunchStage, is_finished: Callable[[int], bool], echo: Callable[[str], None]
    ) -> dict[int, ShardEnd]:
        pending = dict(self._jobs)
        ends: dict[int, ShardEnd] = {}
        last_report = time.monotonic()
        while pending:
            for shard in [s for s in pending if is_finished(s)]:
                ends[shard] = ShardEnd(shard, "marker", pending.pop(shard))
            if not pending:
                break
            states = job_states(pending.values())
            for shard, job in list(pending.items()):
                state = states[job]
                if state in ALIVE or state == UNKNOWN:
                    continue
                if is_finished(shard):  # the marker landed between the two looks
                    ends[shard] = ShardEnd(shard, "marker", pending.pop(shard))
                    continue
                ends[shard] = ShardEnd(shard, "gone from the queue" if state == GONE else state, pending.pop(shard))
            if pending and time.monotonic() - last_report > max(60.0, self.config.poll_s):
                running = sum(states.get(job) == "RUNNING" for job in pending.values())
                echo(f"{stage.name}: {len(ends)} ended, {running} running, {len(pending) - running} queued")
                last_report = time.monotonic()
            if pending:
                time.sleep(self.config.poll_s)
        return ends
