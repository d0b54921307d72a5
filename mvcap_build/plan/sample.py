"""Rates measured on a small sample: the pipeline's own settings, a few of its own objects, here.

The sample is one shard of the producing stage (render or extract) chosen to hold about the
asked number of objects, so no source needs a "limit" of its own: the same key hash that splits
work across a cluster picks the sample. Each stage then runs in a scratch root exactly as
`mvcap build` would run it, and the commit times of its units split its wall time into a start
cost (Blender workers, model loading) and a steady cost per object.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mvcap_build.dataset import DatasetRoot
from mvcap_build.dataset.keys import shard_of
from mvcap_build.dataset.layout import OBJECT_STAGES
from mvcap_build.errors import ConfigError
from mvcap_build.launch.config import SINGLE_SHARD_STAGES, RunnerConfig
from mvcap_build.launch.process import shard_command
from mvcap_build.pipeline.config import PipelineConfig
from mvcap_build.registry import STAGES

PRODUCERS = ("render", "extract")


@dataclass
class StageRate:
    """What one stage cost on the sample: start cost, then seconds per object."""

    stage: str
    objects: int
    seconds: float  # wall time of the whole run
    startup_s: float  # before the first unit (workers, models), less one unit's steady time
    per_object_s: float  # steady time between commits
    bytes_per_object: float = 0.0  # what the stage adds to the root, per object
    per_step_s: float | None = None  # train_ovt: seconds per optimizer step
    note: str = ""
    per_object_sem: float = 0.0  # standard error of per_object_s: objects differ (a bookshelf costs 3x a mug)


@dataclass
class Sample:
    total_objects: int  # what the pipeline's source lists
    views_per_object: float
    rates: dict[str, StageRate] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # stage -> why it was not measured
    hub_bytes_per_object: float = 0.0
    launcher_s: float = 0.0  # `mvcap launch`'s own start, once per build


def pick_shard(keys: list[str], wanted: int) -> tuple[int, int]:
    """(shard, num_shards) of a shard holding about `wanted` of `keys` (at least one)."""
    if len(keys) <= wanted:
        return 0, 1
    num_shards = max(1, round(len(keys) / wanted))
    counts = Counter(shard_of(key, num_shards) for key in keys)
    shard = min(range(num_shards), key=lambda s: (abs(counts.get(s, 0) - wanted), counts.get(s, 0) < wanted, s))
    return shard, num_shards


def split_time(started: float, commits: list[float], ended: float) -> tuple[float, float]:
    """(fixed cost, steady seconds per object) of a run from its start, end and the units'
    commit times: the steady cost is the mean gap between commits, the fixed cost everything
    else (interpreter, imports, workers, models, and the process's own ending)."""
    commits = sorted(commits)
    wall = ended - started
    if not commits:
        return wall, 0.0
    if len(commits) == 1:
        return 0.0, wall  # one object: no way to tell the two apart; all of it is per object
    per_object = (commits[-1] - commits[0]) / (len(commits) - 1)
    return max(0.0, wall - len(commits) * per_object), per_object


def measure(
    config: PipelineConfig,
    objects: int = 3,
    workdir: Path | None = None,
    echo=print,
    train_steps: tuple[int, int] = (2, 6),
) -> Sample:
    """Run the pipeline's stages on about `objects` of its objects in a scratch root, each as
    the process a launched shard is (`mvcap run-shard`, in the stage's own environment), so the
    start cost holds everything a shard pays: interpreter, imports, workers, models."""
    sections = dict(config.sections())
    producer = next((name for name in PRODUCERS if name in sections), None)
    if producer is None:
        raise ConfigError("mvcap plan needs a render or extract section: that is what makes the objects")
    listed = STAGES[producer].load()(sections[producer]).objects()
    if not listed:
        raise ConfigError(f"the {producer} source lists no objects: nothing to plan")
    shard, num_shards = pick_shard([o.key for o in listed], objects)
    scratch = Path(workdir or tempfile.mkdtemp(prefix="mvcap-plan-"))
    scratch.mkdir(parents=True, exist_ok=True)
    root = DatasetRoot(scratch / "root").ensure_writable()
    runner = config.runner or RunnerConfig()
    sample = Sample(total_objects=len(listed), views_per_object=0.0)
    started = time.time()
    subprocess.run(
        [sys.executable, "-m", "mvcap_build", "launch", "--help"], capture_output=True, stdin=subprocess.DEVNULL
    )
    sample.launcher_s = time.time() - started
    for name in sections:
        if name == "extract" and producer == "render":
            continue
        if name == "hub":  # a sample pushed to the Hub would be a real upload
            sample.skipped[name] = "not sampled (it would upload); the Hub size below is what it sends"
            continue
        echo(f"plan: sampling {name} ...")
        sharded = name not in SINGLE_SHARD_STAGES
        python = str(runner.resources(name).python or sys.executable)
        if name == "train_ovt":
            sample.rates[name] = _measure_train(config, root, python, train_steps, scratch)
            continue
        before = _size(root.path)
        file = _scratch_pipeline(config, root, scratch, num_shards)
        started = time.time()
        result = _run_shard(python, file, name, shard if sharded else 0, num_shards if sharded else 1)
        ended = time.time()
        if result.returncode != 0:
            why = _last_error(result.stdout)
            if name in PRODUCERS:
                raise ConfigError(f"plan: the {name} sample failed: {why}")
            sample.skipped[name] = why
            continue
        summary = _summary(root, name)
        done = _exported_objects(root) if name == "export" else summary.get("done", 0)
        if name in PRODUCERS:
            if done == 0:
                raise ConfigError(f"plan: every sampled object failed to {name}; see {root.path / 'failures'}")
            sample.views_per_object = summary.get("items", 0) / done
        rate = StageRate(name, done, ended - started, 0.0, 0.0, (_size(root.path) - before) / max(done, 1))
        if name == "export":  # one unit: its start is the process; per object, its measured throughput
            views_bytes = sample.rates[producer].bytes_per_object if producer in sample.rates else 0.0
            rate.per_object_s = _export_per_object(views_bytes, sample.views_per_object, sections[name])
            rate.startup_s = max(0.0, rate.seconds - done * rate.per_object_s)
            rate.note = (
                "one unit: its time per object from export's measured throughput (benchmarks/export_throughput.py)"
            )
            sample.hub_bytes_per_object = _size(root.export_dir, skip="mvcap") / max(done, 1)
        else:
            commits = _commit_times(root, name)
            rate.startup_s, rate.per_object_s = split_time(started, commits, ended)
            rate.per_object_sem = _sem(commits)
        sample.rates[name] = rate
    return sample


def _scratch_pipeline(config: PipelineConfig, root: DatasetRoot, scratch: Path, num_shards: int, **changes) -> Path:
    """The pipeline with the scratch root, the sample's sharding and `changes` per section."""
    data = config.model_dump(mode="json")
    data["root"] = str(root.path)
    for name, values in changes.items():
        data[name] = data[name] | values
    data["runner"] = {
        "kind": "local",
        "stages": {name: {"shards": num_shards} for name in OBJECT_STAGES if data.get(name)},
    }
    text = yaml.safe_dump(data, sort_keys=False)
    path = scratch / f"pipeline-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _run_shard(python: str, file: Path, stage: str, shard: int, num_shards: int) -> subprocess.CompletedProcess:
    command = shard_command(python, file, stage, shard, num_shards)  # as a launched shard runs
    return subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def _summary(root: DatasetRoot, stage: str) -> dict:
    from mvcap_build.launch.markers import Marker

    for path in (root.path / "launch" / "markers" / stage).glob("*/shard-*.json"):
        if not path.name.endswith(".failed.json"):
            return Marker.model_validate_json(path.read_bytes()).summary
    return {}


def _last_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["no output"])[-1]


# Export's throughput on 2 cores (issue 9, benchmarks/export_throughput.py): original images
# at ~246 MB/s, and re-encoding a 512 px view to a training-ready JPEG ~5.3 ms with a cold cache.
EXPORT_BYTES_PER_S = 246e6
TRAINING_IMAGE_S_PER_VIEW = 0.0053


def _export_per_object(views_bytes: float, views: float, export_config) -> float:
    """A sample of a few objects is all start cost; per object, use the measured throughput."""
    seconds = views_bytes / EXPORT_BYTES_PER_S
    if getattr(export_config, "training_images", None) is not None:
        seconds += views * TRAINING_IMAGE_S_PER_VIEW
    return seconds


def _measure_train(
    config: PipelineConfig, root: DatasetRoot, python: str, steps: tuple[int, int], scratch: Path
) -> StageRate:
    """Two short runs: their difference is the time per step, the rest is the start cost."""
    times = []
    for count in steps:
        file = _scratch_pipeline(
            config,
            root,
            scratch,
            1,
            train_ovt={"max_steps": count, "save_every": count, "output": str(root.path / "train" / f"plan-{count}")},
        )
        started = time.time()
        result = _run_shard(python, file, "train_ovt", 0, 1)
        if result.returncode != 0:
            return StageRate("train_ovt", 0, 0.0, 0.0, 0.0, note=_last_error(result.stdout))
        times.append(time.time() - started)
    per_step = max(0.0, (times[1] - times[0]) / (steps[1] - steps[0]))
    startup = max(0.0, times[0] - steps[0] * per_step)
    return StageRate(
        "train_ovt",
        0,
        times[1],
        startup,
        0.0,
        per_step_s=per_step,
        note=f"{steps[0]} and {steps[1]} steps on the sample",
    )


def _sem(commits: list[float]) -> float:
    """Standard error of the mean gap between commits (0 with fewer than three commits)."""
    ordered = sorted(commits)
    gaps = [b - a for a, b in zip(ordered, ordered[1:], strict=False)]
    if len(gaps) < 2:
        return 0.0
    mean = sum(gaps) / len(gaps)
    return math.sqrt(sum((g - mean) ** 2 for g in gaps) / (len(gaps) - 1) / len(gaps))


def _commit_times(root: DatasetRoot, stage: str) -> list[float]:
    if stage in PRODUCERS:
        return [p.stat().st_mtime for p in root.view_manifests()]
    if stage == "caption":
        return [p.stat().st_mtime for p in root.caption_manifests()]
    return []


def _exported_objects(root: DatasetRoot) -> int:
    import json

    info = root.export_dir / "export.json"
    return int(json.loads(info.read_text("utf-8")).get("objects", 0)) if info.is_file() else 0


def _size(path: Path, skip: str | None = None) -> int:
    total = 0
    for folder, dirs, files in os.walk(path):
        if skip and skip in dirs and Path(folder) == path:
            dirs.remove(skip)
        total += sum((Path(folder) / f).stat().st_size for f in files)
    return total
