"""Starting one shard as a process in its stage's environment, with its output kept.

Every runner ends here: a local thread, a Slurm job (through submitit) and a Ray task each run
`run_shard_process(spec)`. The shard is a child process so that it can live in another Python
environment (vLLM's) than the runner; it dies with its parent (PR_SET_PDEATHSIG), so a lost
Ray worker or a requeued Slurm job never leaves an orphan writing to the root beside its retry.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TIMEOUT_EXIT = 124  # as coreutils' timeout: the shard ran past its deadline


@dataclass(frozen=True)
class ShardSpec:
    """Everything a job needs to run one shard; small and picklable (submitit, Ray)."""

    stage: str
    shard: int
    num_shards: int
    command: tuple[str, ...]
    cwd: str
    log: str  # appended to, one header per attempt
    timeout_s: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    pipeline: str = ""  # the resolved pipeline file (for runners that run the shard in-process)
    redo: str = "none"
    retry_failed: bool = False
    stop: tuple[str, ...] = ()  # run after the shard's process ends, however it ended (a container's `podman rm`)

    @property
    def label(self) -> str:
        return f"{self.stage} shard {self.shard}/{self.num_shards}"


def shard_command(
    python: str,
    pipeline_file: Path,
    stage: str,
    shard: int,
    num_shards: int,
    *,
    gpus: int = 0,
    extra: tuple[str, ...] = (),
) -> tuple[str, ...]:
    """`python -m mvcap_build run-shard ...`; training on several GPUs goes through `accelerate launch`."""
    run = (
        "run-shard",
        str(pipeline_file),
        "--stage",
        stage,
        "--shard",
        str(shard),
        "--num-shards",
        str(num_shards),
        *extra,
    )
    if stage == "train_ovt" and gpus > 1:
        return (
            python,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            str(gpus),
            "-m",
            "mvcap_build",
            *run,
        )
    return (python, "-m", "mvcap_build", *run)


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def run_shard_process(
    spec: ShardSpec, job: str = "", on_start: Callable[[subprocess.Popen], None] | None = None
) -> int:
    """Run the shard to its end; its exit code (negative: killed by that signal; 124: deadline).
    `on_start` gets the process, for a caller that must be able to stop it from another thread."""
    log = Path(spec.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = os.environ | spec.env | ({"MVCAP_LAUNCH_JOB": job} if job else {})
    with log.open("ab") as out:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.write(f"\n==== {stamp} {spec.label} {('job ' + job) if job else ''}\n$ {' '.join(spec.command)}\n".encode())
        out.flush()
        process = subprocess.Popen(
            spec.command,
            cwd=spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )
        if on_start is not None:
            on_start(process)
        try:
            code = process.wait(timeout=spec.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            code = TIMEOUT_EXIT
            out.write(f"\n==== {spec.label}: past its deadline of {spec.timeout_s:.0f} s, stopped\n".encode())
        except BaseException:  # the job itself is being stopped (requeue, cancel): take the shard with it
            _kill_group(process)
            raise
        finally:
            _stop(spec, out)
        out.write(f"==== {spec.label}: exit {code}\n".encode())
    return code


def _stop(spec: ShardSpec, out) -> None:
    """What outlives the shard's process group (a container started through podman's service)."""
    if not spec.stop:
        return
    try:
        subprocess.run(spec.stop, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        out.write(f"==== {spec.label}: could not run {' '.join(spec.stop)}: {error}\n".encode())


def kill_shard(process: subprocess.Popen) -> None:
    """Stop a shard and everything it started (Blender workers, model servers)."""
    _kill_group(process)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
