"""Persistent Blender worker processes, seen from the host.

Each worker is a subprocess running `mvcap_build.render.blender.worker`. The host sends one job
at a time and waits with a deadline: a worker that overruns is killed (the object goes to the
ledger as `timeout`), one that dies is replaced (`worker_crashed`), and every worker is recycled
after `recycle_after` objects because Blender leaks memory across imports.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import mvcap_build
from mvcap_build.errors import EnvironmentBroken
from mvcap_build.render.protocol import (
    Fatal,
    Message,
    ProtocolError,
    Ready,
    Rendered,
    RenderFailed,
    RenderJob,
    Reply,
    decode,
    encode,
)

STARTUP_TIMEOUT_S = 180.0


class WorkerError(RuntimeError):
    """The job did not come back: `reason` is the ledger code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Make the package importable from another interpreter (a separate Blender environment)."""
    env = {**os.environ, **(extra or {})}
    package_parent = str(Path(mvcap_build.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class BlenderWorker:
    def __init__(self, log_path: Path, python: str | None = None, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self.python = python or sys.executable
        self.env = env or {}
        self.process: subprocess.Popen[str] | None = None
        self.jobs_done = 0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("a", encoding="utf-8")
        self.process = subprocess.Popen(
            [self.python, "-m", "mvcap_build.render.blender.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
            env=_worker_env(self.env),
        )
        log.close()
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.process.stdout, self._lines), daemon=True).start()
        self.jobs_done = 0
        try:
            hello = self._receive(STARTUP_TIMEOUT_S)
        except WorkerError as error:
            raise EnvironmentBroken(f"Blender worker did not start ({error}); see {self.log_path}") from error
        if isinstance(hello, Fatal):
            raise EnvironmentBroken(hello.detail)
        if not isinstance(hello, Ready):
            raise EnvironmentBroken(f"unexpected worker greeting {hello}; see {self.log_path}")

    @staticmethod
    def _pump(stream, lines: queue.Queue) -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    def _receive(self, timeout: float) -> Message:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.stop(kill=True)
            raise WorkerError("timeout", f"no answer within {timeout:.0f} s; worker killed") from None
        if line is None:
            code = self.process.wait() if self.process else None
            self.process = None
            raise WorkerError("worker_crashed", f"Blender worker exited with code {code}; see {self.log_path}")
        try:
            return decode(line)
        except ProtocolError as error:
            self.stop(kill=True)
            raise WorkerError("worker_crashed", f"{error}; worker killed, see {self.log_path}") from None

    def call(self, job: RenderJob, timeout: float) -> Reply:
        if self.process is None:
            self.start()
        try:
            self.process.stdin.write(encode(job))
            self.process.stdin.flush()
        except BrokenPipeError:
            self.stop(kill=True)
            raise WorkerError("worker_crashed", f"Blender worker died; see {self.log_path}") from None
        reply = self._receive(timeout)
        self.jobs_done += 1
        if not isinstance(reply, Rendered | RenderFailed) or reply.key != job.key:
            self.stop(kill=True)
            raise WorkerError("worker_crashed", f"the worker answered {job.key} with {reply}; worker killed")
        return reply

    def stop(self, kill: bool = False) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if kill:
            process.kill()
        else:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_jobs(
    jobs: Iterable[RenderJob],
    *,
    num_workers: int,
    log_dir: Path,
    timeout_s: float,
    recycle_after: int,
    python: str | None,
    on_result: Callable[[RenderJob, Reply], None],
    env: dict[str, str] | None = None,
) -> None:
    """Render every job on `num_workers` workers; `on_result(job, reply)` is called from worker
    threads, one call at a time, with a failure reply for timeouts and crashes. `jobs` is read
    lazily, so it can prepare each job (a staging folder) just before it is sent."""
    pending = iter(jobs)  # consumed lazily, one job at a time, under the lock
    fatal: list[BaseException] = []
    lock = threading.Lock()

    def next_job() -> RenderJob | None:
        with lock:
            return next(pending, None)

    def drive(slot: int) -> None:
        worker = BlenderWorker(log_dir / f"worker-{slot}.log", python, env)
        try:
            while not fatal:
                job = next_job()
                if job is None:
                    return
                if worker.process is not None and worker.jobs_done >= recycle_after:
                    worker.stop()
                try:
                    reply = worker.call(job, timeout_s)
                except WorkerError as error:
                    reply = RenderFailed(job.key, error.reason, str(error))
                if isinstance(reply, RenderFailed) and reply.fatal:
                    raise EnvironmentBroken(reply.detail)
                with lock:
                    on_result(job, reply)
        except BaseException as error:  # surface environment errors and our own bugs to the caller
            fatal.append(error)
        finally:
            worker.stop()

    threads = [threading.Thread(target=drive, args=(slot,), daemon=True) for slot in range(num_workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if fatal:
        raise fatal[0]
