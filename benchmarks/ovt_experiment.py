"""Does OVT's consistency term make CLIP more viewpoint-invariant? A small experiment on a CPU.

    python benchmarks/ovt_experiment.py [--seeds 10] [--steps 300] [--jobs 2] [--root data/ovt-experiment]

1. Data: `mvcap build pipelines/ovt-experiment.yaml` renders the 10 demo categories (20 objects
   each, 24 views over the upper hemisphere, 64 px), captions them (template backend) and exports
   them with object-level train / validation / test splits of 12 / 4 / 4 objects per category
   (stratified by category: a hash split of 200 objects left one bottle among 40 validation ones).
2. Base: a tiny CLIP (hidden 32, 2 layers) pretrained from scratch, all weights, on the
   *canonical* views of the training objects only (elevation <= 30 deg, azimuth within 60 deg of
   the front), as web photos show objects: it knows the categories from the usual viewpoints.
3. Fine-tuning from that base, LoRA + VIFormer, on all views of the training objects:
   `plain` (contrastive only: consistency weight 0) and `ovt` (contrastive + consistency, kNN
   anchor, full-pass mining, the trainer's default since bank mining ranks stale entries), LoRA
   alpha = r = 8 as the paper's code (peft's default); in two regimes: `all-captioned` (every
   view has its caption) and `extreme-uncaptioned` (only canonical views have captions; the others
   join the consistency term alone). The consistency weight is chosen per regime on the
   validation split among WEIGHTS, 0 included (then `ovt` is `plain`), by the mean over
   --validation-seeds seeds (their own seeds, not the test ones) of the accuracy on all views;
   then every test seed is trained and evaluated once on the test split.
4. Evaluation (`mvcap eval`'s export-split code) on held-out objects. Zero-shot accuracy with
   prompts in the format of the training captions ("A chair, seen from the back, from above, on a
   white background."), each class's embedding averaged over the captioner's 32 viewpoint phrases,
   on all, canonical and extreme views; beside it the 80 ImageNet templates' figure (the tiny text
   tower never saw such prompts: they give class embeddings close together). Invariance (mean
   cosine of an object's views to their centre), and net of collapse: the same less the views'
   mean cosine to the centre of all test views; same-object retrieval mAP.

Runs go --jobs at a time (default 2, one torch thread each). Writes results.json and results.md
(mean +- std over seeds, paired differences ovt - plain, the settings and the wall time).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PIPELINE = REPO / "pipelines" / "ovt-experiment.yaml"
CANONICAL = {"elevation_band": (0.0, 30.0), "azimuth_halfwidth": 60.0}
REGIMES = ("all-captioned", "extreme-uncaptioned")
METHODS = ("plain", "ovt")
WEIGHTS = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0)  # consistency weights tried on the validation split, per regime
VALIDATION_SEED0 = 1000  # validation seeds are 1000, 1001, ...: never a test seed
FIGURES = ("all", "canonical", "extreme", "all_80", "invariance", "own_minus_global", "map", "retrieval")


def is_canonical(azimuth_deg: np.ndarray, elevation_deg: np.ndarray) -> np.ndarray:
    """The same split of views `mvcap eval` reports as canonical / extreme."""
    from mvcap_build.eval.metrics import canonical_mask

    return canonical_mask(azimuth_deg, elevation_deg, CANONICAL["elevation_band"], CANONICAL["azimuth_halfwidth"])


def build_data(root: Path, per_category: int | None = None, views: int | None = None) -> Path:
    """`mvcap build` of the experiment's pipeline (resumes: a rerun renders nothing again)."""
    import yaml

    pipeline = yaml.safe_load(PIPELINE.read_text())
    if per_category:
        pipeline["render"]["source"]["per_category"] = per_category
    if views:
        pipeline["render"]["views"]["num_views"] = views
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipeline.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    subprocess.run(
        [
            str(Path(sys.executable).parent / "mvcap"),
            "build",
            str(root / "pipeline.yaml"),
            "--root",
            str(root),
            "--quiet",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return root / "export"


def uncaptioned_copy(export_dir: Path, target: Path) -> Path:
    """The export with the captions of non-canonical training views emptied (validation and
    test shards unchanged): the regime where extreme views come without text."""
    import datasets

    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(export_dir, target)
    for shard in sorted((target / "data").glob("train-*.parquet")):
        table = datasets.Dataset.from_parquet(str(shard))
        keep = is_canonical(np.array(table["azimuth_deg"]), np.array(table["elevation_deg"]))
        table = table.map(lambda row, i, keep=keep: {"caption": row["caption"] if keep[i] else ""}, with_indices=True)
        table.to_parquet(str(shard) + ".tmp")
        Path(str(shard) + ".tmp").replace(shard)
    return target


def pretrain_base(export_dir: Path, out: Path, steps: int, seed: int = 0) -> Path:
    """A tiny CLIP trained from scratch (all weights, CLIP loss) on canonical training views."""
    import torch
    from transformers import AutoTokenizer, CLIPModel

    from mvcap_build.clip.preprocess import ImageTransform
    from mvcap_build.tiny_models.tiny_clip import build_tiny_clip
    from mvcap_build.train.data import ExportData

    data = ExportData.open(export_dir)  # the train split
    table = data.dataset
    made_from = {"steps": steps, "seed": seed, "train_keys": sorted(set(table["key"]))}
    if (
        (out / "model.safetensors").is_file()
        and (out / "pretrain.json").is_file()
        and json.loads((out / "pretrain.json").read_text()) == made_from
    ):
        return out
    canonical = np.flatnonzero(is_canonical(np.array(table["azimuth_deg"]), np.array(table["elevation_deg"])))
    captions = table["caption"]
    categories = sorted(set(table["category"]))
    build_tiny_clip(out, texts=list(captions) + [f"a photo of a {c}." for c in categories], image_size=64, seed=seed)
    model = CLIPModel.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    transform = ImageTransform.from_pretrained(out, 64)
    pixels = torch.stack([transform(data.load_image(table[int(i)]["image"])) for i in canonical])
    texts = [captions[int(i)] for i in canonical]
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.1)  # 2e-3 collapses it
    rng = np.random.default_rng(seed)
    model.train()
    for step in range(steps):
        pick = rng.choice(len(canonical), size=min(64, len(canonical)), replace=False)
        tokens = tokenizer([texts[i] for i in pick], padding=True, return_tensors="pt")
        loss = model(pixel_values=pixels[pick], return_loss=True, **tokens).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 100 == 0 or step == steps - 1:
            print(
                f"  pretrain step {step + 1}/{steps} loss {loss.item():.3f} ({len(canonical)} canonical views)",
                flush=True,
            )
    model.save_pretrained(out)
    (out / "pretrain.json").write_text(json.dumps(made_from))
    return out


def fine_tune(base: Path, export_dir: Path, out: Path, *, weight: float, seed: int, steps: int) -> Path:
    from mvcap_build.train.config import TrainOVTConfig
    from mvcap_build.train.trainer import train_ovt

    config = TrainOVTConfig(
        clip_model=str(base),
        objects_per_batch=12,
        views_per_object=4,
        hard_views=2,
        max_steps=steps,
        lr=1e-3,
        warmup_steps=20,
        save_every=steps,
        log_every=max(1, steps // 3),
        num_workers=0,
        viformer_heads=4,
        lora_r=8,
        lora_alpha=8,
        consistency_weight=weight,
        anchor="knn",
        mining="full_pass",
        seed=seed,
    )
    return train_ovt(config, export_dir, out, redo=True)  # a rerun with other settings starts that run over


def evaluate(model: Path, export_dir: Path, split: str, *, with_80: bool = True) -> dict:
    """`mvcap eval`'s export-split figures on a held-out split: accuracy (%) on all / canonical /
    extreme views with caption-format prompts, on all views with the 80 templates (`with_80`),
    invariance, invariance less the cosine to the global centre, and same-object retrieval (mAP
    and recall@1, %)."""
    from mvcap_build.clip.templates import class_text_embeddings, templates_for
    from mvcap_build.eval.export_split import ExportSplit, evaluate_export
    from mvcap_build.eval.model_specs import resolve_models
    from mvcap_build.eval.settings import EvalSettings

    settings = EvalSettings(
        canonical_elevation_deg=CANONICAL["elevation_band"],
        canonical_azimuth_deg=CANONICAL["azimuth_halfwidth"],
        device="cpu",
        batch_size=256,
        workers=0,
        templates="caption",
    )
    spec = resolve_models([str(model)])[0]
    clip = spec.load("cpu")
    data = ExportSplit.open(export_dir, split)
    figures, _ = evaluate_export(
        clip,
        data,
        class_text_embeddings(clip, data.classnames, templates_for("caption")),
        settings,
        label=spec.name,
        show_progress=False,
    )
    result = {
        "all": figures["top1"],
        "canonical": figures["canonical"]["top1"],
        "extreme": figures["extreme"]["top1"],
        "all_80": None,
        "invariance": figures["invariance"]["mean_cosine_to_centre"],
        "own_minus_global": figures["invariance"]["own_minus_global"],
        "map": figures["retrieval"]["map"],
        "retrieval": figures["retrieval"]["recall_at_1"],
    }
    if with_80:  # images embedded again: cheap at this size, and evaluate_export stays as mvcap eval runs it
        eighty, _ = evaluate_export(
            clip,
            data,
            class_text_embeddings(clip, data.classnames, templates_for("80")),
            settings,
            label=spec.name,
            show_progress=False,
        )
        result["all_80"] = eighty["top1"]
    return result


def train_and_evaluate(job: dict) -> dict:
    """One fine-tuning run, then its figures on `job["split"]`: a worker's unit of work."""
    import torch

    torch.set_num_threads(1)  # tiny models: a second thread only spins; the cores go to parallel runs
    run = fine_tune(job["base"], job["export"], job["out"], weight=job["weight"], seed=job["seed"], steps=job["steps"])
    return evaluate(run, job["export"], job["split"], with_80=job["with_80"])


def run_jobs(jobs: list[dict], pool) -> list[dict]:
    """The jobs' figures in order, across the pool's processes (in this one without a pool)."""
    results = pool.map(train_and_evaluate, jobs) if pool is not None else map(train_and_evaluate, jobs)
    out = []
    for job, figures in zip(jobs, results):
        print(
            f"  {job['label']}: " + ", ".join(f"{k} {v:.3g}" for k, v in figures.items() if v is not None), flush=True
        )
        out.append(figures)
    return out


def summarise(runs: dict) -> dict:
    """runs[regime][method][seed] = figures -> mean, std and paired ovt - plain differences."""
    summary = {}
    for regime, by_method in runs.items():
        summary[regime] = {}
        for method, by_seed in by_method.items():
            summary[regime][method] = {
                k: _mean_std([r[k] for r in by_seed.values()]) for k in next(iter(by_seed.values()))
            }
        if "ovt" in by_method and "plain" in by_method:
            seeds = sorted(set(by_method["ovt"]) & set(by_method["plain"]))
            summary[regime]["ovt - plain"] = {
                k: _mean_std([by_method["ovt"][s][k] - by_method["plain"][s][k] for s in seeds])
                for k in next(iter(by_method["ovt"].values()))
            }
    return summary


def _mean_std(values: list[float]) -> dict:
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        "n": len(values),
    }


TABLE = (
    ("all", "all views"),
    ("canonical", "canonical"),
    ("extreme", "extreme"),
    ("all_80", "all views, 80 templates"),
    ("invariance", "invariance"),
    ("own_minus_global", "own − global centre"),
    ("map", "same-object mAP"),
)


def markdown(summary: dict, settings: dict) -> str:
    weights = ", ".join(f"{regime} {w:g}" for regime, w in settings["chosen_weight"].items())
    validation = "; ".join(
        f"{regime}: " + ", ".join(f"{w} → {v['mean']:.1f}" for w, v in by_weight.items())
        for regime, by_weight in settings["validation"].items()
    )
    lines = [
        f"OVT experiment, {settings['date']}, {settings['minutes']} min: {settings['seeds']} test seeds, "
        f"{settings['steps']} fine-tuning steps ({settings['pretrain_steps']} pretraining), {settings['objects']}; "
        f"consistency weight chosen per regime on validation from {', '.join(f'{w:g}' for w in settings['weights'])} "
        f"over {len(settings['validation_seeds'])} seeds: {weights} (validation accuracy per weight, {validation}). "
        "Test-split objects. Accuracy: zero-shot top-1 (%) with prompts in the training-caption format averaged "
        "over 32 viewpoint phrases, and on all views with the 80 ImageNet templates; invariance: mean cosine of an "
        "object's views to their centre; own − global centre: that less their mean cosine to the centre of all "
        "test views; same-object mAP (%) with an object's other views as the relevant ones. Mean ± std over seeds; "
        "`ovt - plain` is the paired difference per seed.",
        "",
        "| regime | model | " + " | ".join(title for _, title in TABLE) + " |",
        "| --- | --- |" + " --- |" * len(TABLE),
    ]
    for regime, by_method in summary.items():
        for method, figures in by_method.items():
            cells = []
            for key, _ in TABLE:
                f = figures[key]
                digits = 3 if key in ("invariance", "own_minus_global") else 1
                sign = "+" if method == "ovt - plain" and f["mean"] >= 0 else ""
                cells.append(f"{sign}{f['mean']:.{digits}f} ± {f['std']:.{digits}f}")
            lines.append(f"| {regime} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO / "data" / "ovt-experiment")
    parser.add_argument("--seeds", type=int, default=10, help="test seeds (default 10)")
    parser.add_argument(
        "--validation-seeds", type=int, default=3, help="seeds per candidate weight on validation (default 3)"
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--pretrain-steps", type=int, default=1000)
    parser.add_argument("--per-category", type=int, help="objects per category (default: the pipeline's 20)")
    parser.add_argument("--views", type=int, help="views per object (default: the pipeline's 24)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="fine-tuning runs in parallel, one thread each (default: 2, or 1 on one core)",
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # tiny models: a second thread only spins
    started = time.perf_counter()
    out = args.root / "results"
    out.mkdir(parents=True, exist_ok=True)
    print("1/4 data", flush=True)
    exports = {"all-captioned": build_data(args.root, args.per_category, args.views)}
    exports["extreme-uncaptioned"] = uncaptioned_copy(
        exports["all-captioned"], args.root / "export-extreme-uncaptioned"
    )
    print("2/4 base: tiny CLIP pretrained on canonical views", flush=True)
    base = pretrain_base(exports["all-captioned"], out / "base", args.pretrain_steps)

    # Spawned, not forked: this process has torch loaded and its threads set up.
    pool = ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) if args.jobs > 1 else None
    validation_seeds = [VALIDATION_SEED0 + i for i in range(args.validation_seeds)]
    print(
        f"3/4 consistency weight per regime, on the validation split (seeds {validation_seeds}, {args.jobs} at a time)",
        flush=True,
    )
    jobs = [
        {
            "base": base,
            "export": exports[regime],
            "out": out / "validation" / f"{regime}-w{weight}-seed{seed}",
            "weight": weight,
            "seed": seed,
            "steps": args.steps,
            "split": "validation",
            "with_80": False,
            "label": f"{regime} weight {weight} seed {seed} (validation)",
            "key": (regime, weight),
        }
        for regime in REGIMES
        for weight in WEIGHTS
        for seed in validation_seeds
    ]
    scores: dict = {}
    for job, figures in zip(jobs, run_jobs(jobs, pool)):
        scores.setdefault(job["key"], []).append(figures["all"])
    validation, chosen = {regime: {} for regime in REGIMES}, {}
    for regime in REGIMES:
        for weight in WEIGHTS:
            validation[regime][weight] = {**_mean_std(scores[regime, weight]), "per_seed": scores[regime, weight]}
            print(
                f"  {regime} weight {weight}: validation accuracy {validation[regime][weight]['mean']:.1f} "
                f"± {validation[regime][weight]['std']:.1f}",
                flush=True,
            )
        # Ties (weight 0 and another) go to the smaller weight: the consistency term must earn its place.
        chosen[regime] = max(WEIGHTS, key=lambda w: (round(validation[regime][w]["mean"], 6), -w))

    print(f"4/4 test split: {args.seeds} seeds x {len(REGIMES)} regimes x plain / ovt (weights {chosen})", flush=True)
    runs = {regime: {"base": {}, "plain": {}, "ovt": {}} for regime in REGIMES}
    jobs = [
        {
            "base": base,
            "export": exports[regime],
            "out": out / "test" / f"{regime}-w{weight}-seed{seed}",
            "weight": weight,
            "seed": seed,
            "steps": args.steps,
            "split": "test",
            "with_80": True,
            "label": f"{regime} {method} seed {seed}",
            "key": (regime, method, seed),
        }
        for regime in REGIMES
        for seed in range(args.seeds)
        for method, weight in (("plain", 0.0), ("ovt", chosen[regime]))
        if not (method == "ovt" and weight == 0.0)
    ]  # weight 0 chosen: `ovt` is the `plain` run itself
    for job, figures in zip(jobs, run_jobs(jobs, pool)):
        regime, method, seed = job["key"]
        runs[regime][method][seed] = figures
    if pool is not None:
        pool.shutdown()
    for regime in REGIMES:
        base_figures = evaluate(base, exports[regime], "test")
        for seed in range(args.seeds):
            runs[regime]["base"][seed] = base_figures
            if chosen[regime] == 0.0:
                runs[regime]["ovt"][seed] = runs[regime]["plain"][seed]

    from mvcap_build.eval.export_split import ExportSplit

    sizes = {
        split: len(set(ExportSplit.open(exports["all-captioned"], split).keys)) for split in ("validation", "test")
    }
    settings = {
        "date": dt.date.today().isoformat(),
        "seeds": args.seeds,
        "validation_seeds": validation_seeds,
        "steps": args.steps,
        "pretrain_steps": args.pretrain_steps,
        "weights": list(WEIGHTS),
        "chosen_weight": chosen,
        "validation": {r: {str(w): v for w, v in by_weight.items()} for r, by_weight in validation.items()},
        "objects": f"{sizes['validation']} validation / {sizes['test']} test objects",
        "fine_tuning": {
            "objects_per_batch": 12,
            "views_per_object": 4,
            "hard_views": 2,
            "lr": 1e-3,
            "lora_r": 8,
            "lora_alpha": 8,
            "anchor": "knn",
            "mining": "full_pass",
        },
        "canonical": CANONICAL,
        "parallel_runs": args.jobs,
        "torch_threads": 1,
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }
    summary = summarise(runs)
    (out / "results.json").write_text(json.dumps({"settings": settings, "summary": summary, "runs": runs}, indent=1))
    (out / "results.md").write_text(markdown(summary, settings))
    print(markdown(summary, settings))
    print(f"done in {settings['minutes']} min; {out / 'results.md'}")


if __name__ == "__main__":
    main()
