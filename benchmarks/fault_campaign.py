"""A fault campaign: random SIGKILLs during every stage, and every stage on a full disk.

    python benchmarks/fault_campaign.py [--kills 4] [--seed 0] [--no-disk-full]

A small root is built once without faults (the reference). Then, per stage (render, extract,
caption, export, train-ovt, preview):
- kills: the stage runs on a copy holding only its inputs and is killed (SIGKILL to its whole
  process group, Blender workers included) at a random moment within its clean run time; the same
  command is rerun to the end. Each trial checks: the rerun exits 0 without a traceback, the result
  equals the reference (render: the same objects and settings, pixels within Cycles' noise; every
  other stage: the same bytes; train-ovt: the same final step), and no `.tmp-*` is left.
- disk full (root on a real tmpfs, as root): the stage runs with ~no free space and must stop in
  one line with exit 2, blaming no object in the ledger; with the space back, a rerun must reach
  the reference.

Prints one line per trial and a table of figures (trials, kills that landed mid-run, results
equal to the reference, leftovers, tracebacks).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("MVCAP_FIXTURES", REPO.parent / "shared" / "fixtures"))
MVCAP = [sys.executable, "-m", "mvcap_build"]
CATEGORIES = ["chair", "table", "stool", "mug", "bottle", "lamp"]

# What each stage reads (copied into a trial root) and what it writes (compared with the reference).
INPUTS = {
    "render": [],
    "extract": [],
    "caption": ["objects", "views"],
    "export": ["objects", "views", "captions"],
    "train-ovt": ["objects", "views", "captions", "export"],
    "preview": ["objects", "views", "captions", "failures", "export"],
}
OUTPUTS = {
    "render": "views",
    "extract": "views",
    "caption": "captions",
    "export": "export",
    "train-ovt": "train",
    "preview": "preview",
}


def pipeline(path: Path, root: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "root": str(root),
                "render": {
                    "source": {"kind": "demo", "categories": CATEGORIES, "per_category": 1},
                    "views": {"num_views": 6},
                    "resolution": 48,
                    "samples": 4,
                    "denoise": False,
                    "device": "cpu",
                    "workers": 1,
                },
                "caption": {"backend": "template"},
                "export": {"name": "fault-campaign", "rows_per_parquet": 12, "training_images": {"size": 32}},
                "train_ovt": {
                    "clip_model": "tiny-random",
                    "objects_per_batch": 4,
                    "views_per_object": 3,
                    "hard_views": 1,
                    "max_steps": 24,
                    "save_every": 4,
                    "log_every": 4,
                    "warmup_steps": 2,
                    "num_workers": 0,
                },
            }
        )
    )
    return path


def captures(folder: Path, copies: int) -> Path:
    """Several IM3D objects: copies of the real NeRF chair in the fixtures."""
    for index in range(copies):
        shutil.copytree(FIXTURES / "im3d" / "throne_01", folder / f"throne_{index:02d}")
    return folder


def command(stage: str, root: Path, config: Path, capture_folder: Path) -> list[str]:
    if stage == "extract":
        return [
            *MVCAP,
            "extract",
            str(root),
            "--source",
            "im3d",
            "--folder",
            str(capture_folder),
            "--num-frames",
            "8",
            "--resolution",
            "64",
            "--quiet",
        ]
    if stage == "preview":
        return [*MVCAP, "preview", str(root), "--quiet"]
    return [*MVCAP, stage, str(root), "--config", str(config), *(["--quiet"] if stage != "train-ovt" else [])]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, start_new_session=True)


def killed_run(cmd: list[str], after_s: float) -> bool:
    """Start `cmd`, SIGKILL its process group after `after_s`; True if it was still running."""
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        process.wait(timeout=after_s)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True


def trial_root(reference: Path, stage: str, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    for name in INPUTS[stage]:
        if (reference / name).exists():
            shutil.copytree(reference / name, where / name)
    return where


def outputs(root: Path, stage: str) -> dict[str, str]:
    """Relative path -> sha256 of the stage's output files (the volatile ones left out)."""
    folder = root / OUTPUTS[stage]
    if not folder.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): digest(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".log")
    }


def digest(path: Path) -> str:
    """sha256 of a file; a preview page's `"root"` path and `"generated"` time are left out (each
    trial root lives elsewhere and is previewed later than the reference)."""
    data = path.read_bytes()
    if path.name == "index.js":
        data = re.sub(rb'"(generated|root)":"[^"]*"', b"", data)
    return hashlib.sha256(data).hexdigest()


def same_as_reference(stage: str, root: Path, reference: Path) -> str | None:
    """None when equal; else what differs."""
    if stage in ("render", "extract"):
        ours, theirs = manifests(root), manifests(reference)
        if {k: v[0] for k, v in ours.items()} != {k: v[0] for k, v in theirs.items()}:
            return f"objects or fingerprints differ: {sorted(set(ours) ^ set(theirs))}"
        if stage == "extract":
            return None if outputs(root, stage) == outputs(reference, stage) else "view bytes differ"
        for key, (_, files) in theirs.items():
            for file in files:
                a, b = (pixels(r / "views" / key / file) for r in (root, reference))
                if np.abs(a - b).max() > 4 or (np.abs(a - b) > 0).mean() > 0.002:
                    return f"{key}/{file}: pixels differ beyond Cycles' noise"
        return None
    if stage == "train-ovt":
        ours, theirs = last_step(root), last_step(reference)
        return None if ours == theirs else f"last checkpoint step {ours}, reference {theirs}"
    ours, theirs = outputs(root, stage), outputs(reference, stage)
    if stage == "preview":  # each run writes under its own run-<time> folder, which the page names
        ours, theirs = (
            {re.sub(r"run-\d{8}T\d+Z", "run-*", k): v for k, v in files.items() if not k.endswith(".html")}
            for files in (ours, theirs)
        )
    if ours != theirs:
        differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        return f"{len(differ)} files differ, e.g. {differ[:3]}"
    return None


def manifests(root: Path) -> dict[str, tuple[str, list[str]]]:
    found = {}
    for path in sorted((root / "views").glob("*/*/views.json")):
        data = json.loads(path.read_text())
        found[path.parent.relative_to(root / "views").as_posix()] = (
            data["fingerprint"]["digest"],
            [v["file"] for v in data["views"]],
        )
    return found


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA")).astype(int)


def last_step(root: Path) -> int | None:
    steps = [int(p.name.split("-")[1]) for p in (root / "train").rglob("step-*") if p.is_dir() and "tmp" not in p.name]
    return max(steps) if steps else None


def leftovers(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob(".tmp-*"))


def campaign_kills(stage, reference, config, capture_folder, work, rng, kills, clean_s) -> list[dict]:
    results = []
    for trial in range(kills):
        root = trial_root(reference, stage, work / f"{stage}-kill-{trial}")
        after = rng.uniform(0.15, max(0.3, 0.95 * clean_s))  # within the clean run, past Python's start
        mid = killed_run(command(stage, root, config, capture_folder), after)
        rerun = run(command(stage, root, config, capture_folder))
        result = {
            "stage": stage,
            "trial": trial,
            "kill_at_s": round(after, 2),
            "mid_run": mid,
            "rerun_rc": rerun.returncode,
            "traceback": "Traceback" in rerun.stderr,
            "differs": same_as_reference(stage, root, reference) if rerun.returncode == 0 else rerun.stderr[-300:],
            "leftovers": leftovers(root),
        }
        results.append(result)
        print(json.dumps(result), flush=True)
        shutil.rmtree(root, ignore_errors=True)
    return results


def campaign_disk_full(stage, reference, config, capture_folder, work) -> dict:
    disk = work / f"disk-{stage}"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(disk)], check=True)
    try:
        root = trial_root(reference, stage, disk / "root")
        filler = disk / "filler"
        with filler.open("wb") as handle:
            handle.write(b"\0" * max(0, shutil.disk_usage(disk).free - 4096))
        full = run(command(stage, root, config, capture_folder))
        ledgered = (
            sorted(str(p.relative_to(root)) for p in (root / "failures").rglob("*.json"))
            if (root / "failures").exists()
            else []
        )
        ledgered = [p for p in ledgered if not (reference / p).exists()]
        filler.unlink()
        rerun = run(command(stage, root, config, capture_folder))
        lines = [line for line in full.stderr.splitlines() if line.startswith("error:")] or full.stderr.splitlines()[
            -1:
        ]
        result = {
            "stage": stage,
            "disk_full_rc": full.returncode,
            "traceback": "Traceback" in full.stderr,
            "message": lines[0][:160] if lines else "",
            "blamed_objects": ledgered,
            "rerun_rc": rerun.returncode,
            "differs": same_as_reference(stage, root, reference) if rerun.returncode == 0 else rerun.stderr[-300:],
            "leftovers": leftovers(root),
        }
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=4, help="killed runs per stage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", default=",".join(INPUTS), help="comma-separated subset")
    parser.add_argument("--no-disk-full", action="store_true", help="skip the tmpfs runs (they need root)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="mvcap-faults-"))
    try:
        reference = work / "reference"
        config = pipeline(work / "pipeline.yaml", reference)
        capture_folder = captures(work / "captures", 6)
        clean = {}
        for stage in INPUTS:  # the reference, one stage at a time, timed
            started = time.monotonic()
            result = run(
                command(stage, reference, config, capture_folder)
                if stage != "extract"
                else command(stage, work / "reference-extract", config, capture_folder)
            )
            clean[stage] = time.monotonic() - started
            if result.returncode != 0:
                sys.exit(f"reference {stage} failed:\n{result.stderr}")
        extract_reference = work / "reference-extract"
        print("clean run times (s): " + ", ".join(f"{s} {t:.1f}" for s, t in clean.items()), flush=True)
        stages = args.stages.split(",")
        kill_results, disk_results = [], []
        for stage in stages:
            ref = extract_reference if stage == "extract" else reference
            kill_results += campaign_kills(stage, ref, config, capture_folder, work, rng, args.kills, clean[stage])
            if not args.no_disk_full:
                disk_results.append(campaign_disk_full(stage, ref, config, capture_folder, work))
        print("\n| stage | killed runs | killed mid-run | reruns equal to reference | leftovers | tracebacks |")
        print("|---|---|---|---|---|---|")
        for stage in stages:
            mine = [r for r in kill_results if r["stage"] == stage]
            print(
                f"| {stage} | {len(mine)} | {sum(r['mid_run'] for r in mine)} | "
                f"{sum(r['rerun_rc'] == 0 and r['differs'] is None for r in mine)} | "
                f"{sum(bool(r['leftovers']) for r in mine)} | {sum(r['traceback'] for r in mine)} |"
            )
        if disk_results:
            print("\n| stage | disk full: exit | traceback | objects blamed | rerun equal to reference | message |")
            print("|---|---|---|---|---|---|")
            for r in disk_results:
                print(
                    f"| {r['stage']} | {r['disk_full_rc']} | {r['traceback']} | {len(r['blamed_objects'])} | "
                    f"{r['rerun_rc'] == 0 and r['differs'] is None} | {r['message']} |"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
