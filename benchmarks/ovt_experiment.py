"""Does OVT's consistency term make CLIP more viewpoint-invariant? A small experiment on a CPU.

    python benchmarks/ovt_experiment.py [--seeds 5] [--steps 300] [--root data/ovt-experiment]

1. Data: `mvcap build pipelines/ovt-experiment.yaml` renders the 10 demo categories (20 objects
   each, 24 views over the upper hemisphere, 64 px), captions them (template backend) and exports
   them with object-level train / validation / test splits.
2. Base: a tiny CLIP (hidden 32, 2 layers) pretrained from scratch, all weights, on the
   *canonical* views of the training objects only (elevation <= 30 deg, azimuth within 60 deg of
   the front), as web photos show objects: it knows the categories from the usual viewpoints.
3. Fine-tuning from that base, LoRA + VIFormer, on all views of the training objects:
   `plain` (contrastive only: consistency weight 0) and `ovt` (contrastive + consistency, kNN
   anchor, bank mining), in two regimes: `all-captioned` (every view has its caption) and
   `extreme-uncaptioned` (only canonical views have captions; the others join the consistency
   term alone). The consistency weight is chosen per regime on the validation split (seed 0,
   accuracy on all views); then every seed is trained and evaluated once on the test split.
4. Evaluation with `mvcap eval` on held-out objects: zero-shot accuracy (80 templates) on all,
   canonical and extreme views, and invariance (mean cosine of an object's views to their centre).

Writes results.json and results.md (mean +- std over seeds, paired differences ovt - plain).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PIPELINE = REPO / "pipelines" / "ovt-experiment.yaml"
CANONICAL = {"elevation_band": (0.0, 30.0), "azimuth_halfwidth": 60.0}
REGIMES = ("all-captioned", "extreme-uncaptioned")
METHODS = ("plain", "ovt")
WEIGHTS = (0.05, 0.1, 0.25, 0.5, 1.0)  # consistency weights tried on the validation split, per regime


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
    subprocess.run([str(Path(sys.executable).parent / "mvcap"), "build", str(root / "pipeline.yaml"), "--root", str(root), "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
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
        table = table.map(lambda row, i: {"caption": row["caption"] if keep[i] else ""}, with_indices=True)
        table.to_parquet(str(shard) + ".tmp")
        Path(str(shard) + ".tmp").replace(shard)
    return target


def pretrain_base(export_dir: Path, out: Path, steps: int, seed: int = 0) -> Path:
    """A tiny CLIP trained from scratch (all weights, CLIP loss) on canonical training views."""
    import torch
    from transformers import AutoTokenizer, CLIPModel

    from mvcap_build.models.tiny_clip import build_tiny_clip
    from mvcap_build.train.data import ExportData
    from mvcap_build.train.preprocess import ImageTransform

    if (out / "model.safetensors").is_file():
        return out
    data = ExportData.open(export_dir)  # the train split
    table = data.dataset
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
            print(f"  pretrain step {step + 1}/{steps} loss {loss.item():.3f} ({len(canonical)} canonical views)", flush=True)
    model.save_pretrained(out)
    return out


def fine_tune(base: Path, export_dir: Path, out: Path, *, weight: float, seed: int, steps: int) -> Path:
    from mvcap_build.train.config import TrainOVTConfig
    from mvcap_build.train.trainer import train_ovt

    config = TrainOVTConfig(
        clip_model=str(base), objects_per_batch=12, views_per_object=4, hard_views=2, max_steps=steps,
        lr=1e-3, warmup_steps=20, save_every=steps, log_every=max(1, steps // 3), num_workers=0,
        viformer_heads=4, lora_r=8, lora_alpha=16, consistency_weight=weight, anchor="knn", mining="bank",
        seed=seed,
    )
    return train_ovt(config, export_dir, out)


def evaluate(model: Path, export_dir: Path, split: str) -> dict:
    """`mvcap eval` on a held-out split: accuracy on all / canonical / extreme views (%), the
    invariance figure, and same-object retrieval (recall@1, %)."""
    from mvcap_build.eval.export_split import ExportSplit
    from mvcap_build.eval.models import resolve_models
    from mvcap_build.eval.run import Benchmarks, run_eval
    from mvcap_build.eval.settings import EvalSettings

    settings = EvalSettings(canonical_elevation_deg=CANONICAL["elevation_band"], canonical_azimuth_deg=CANONICAL["azimuth_halfwidth"],
                            device="cpu", batch_size=256, workers=0)
    spec = resolve_models([str(model)])
    results = run_eval(spec, Benchmarks(export=ExportSplit.open(export_dir, split)), settings, show_progress=False)
    figures = results["export"]["results"][spec[0].name]
    return {
        "all": figures["top1"],
        "canonical": figures["canonical"]["top1"],
        "extreme": figures["extreme"]["top1"],
        "invariance": figures["invariance"]["mean_cosine_to_centre"],
        "retrieval": figures["retrieval"]["recall_at_1"],
    }


def summarise(runs: dict) -> dict:
    """runs[regime][method][seed] = figures -> mean, std and paired ovt - plain differences."""
    summary = {}
    for regime, by_method in runs.items():
        summary[regime] = {}
        for method, by_seed in by_method.items():
            summary[regime][method] = {k: _mean_std([r[k] for r in by_seed.values()]) for k in next(iter(by_seed.values()))}
        if "ovt" in by_method and "plain" in by_method:
            seeds = sorted(set(by_method["ovt"]) & set(by_method["plain"]))
            summary[regime]["ovt - plain"] = {
                k: _mean_std([by_method["ovt"][s][k] - by_method["plain"][s][k] for s in seeds])
                for k in next(iter(by_method["ovt"].values()))
            }
    return summary


def _mean_std(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, "n": len(values)}


def markdown(summary: dict, settings: dict) -> str:
    lines = [f"OVT experiment, {settings['date']}: {settings['seeds']} seeds, {settings['steps']} fine-tuning steps, "
             f"consistency weight chosen per regime on validation: {settings['chosen_weight']}. Test-split objects; "
             "accuracy is zero-shot top-1 (%, 80 templates); invariance the mean cosine of an object's views to their "
             "centre; retrieval the share of views whose nearest other view is of the same object (%).", "",
             "| regime | model | all views | canonical | extreme | invariance | retrieval |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for regime, by_method in summary.items():
        for method, figures in by_method.items():
            cells = []
            for key in ("all", "canonical", "extreme", "invariance", "retrieval"):
                f = figures[key]
                digits = 3 if key == "invariance" else 1
                sign = "+" if method == "ovt - plain" and f["mean"] >= 0 else ""
                cells.append(f"{sign}{f['mean']:.{digits}f} ± {f['std']:.{digits}f}")
            lines.append(f"| {regime} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO / "data" / "ovt-experiment")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--pretrain-steps", type=int, default=1000)
    parser.add_argument("--per-category", type=int, help="objects per category (default: the pipeline's 20)")
    parser.add_argument("--views", type=int, help="views per object (default: the pipeline's 24)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # tiny models: a second thread only spins
    started = time.perf_counter()
    out = args.root / "results"
    out.mkdir(parents=True, exist_ok=True)
    print("1/4 data", flush=True)
    exports = {"all-captioned": build_data(args.root, args.per_category, args.views)}
    exports["extreme-uncaptioned"] = uncaptioned_copy(exports["all-captioned"], args.root / "export-extreme-uncaptioned")
    print("2/4 base: tiny CLIP pretrained on canonical views", flush=True)
    base = pretrain_base(exports["all-captioned"], out / "base", args.pretrain_steps)

    print("3/4 consistency weight per regime, on the validation split (seed 0)", flush=True)
    validation, chosen = {regime: {} for regime in REGIMES}, {}
    for regime in REGIMES:
        for weight in WEIGHTS:
            run = fine_tune(base, exports[regime], out / "validation" / f"{regime}-w{weight}", weight=weight, seed=0, steps=args.steps)
            validation[regime][weight] = evaluate(run, exports[regime], "validation")["all"]
            print(f"  {regime} weight {weight}: validation accuracy {validation[regime][weight]:.1f}", flush=True)
        chosen[regime] = max(validation[regime], key=validation[regime].get)

    print(f"4/4 test split: {args.seeds} seeds x {len(REGIMES)} regimes x plain / ovt (weights {chosen})", flush=True)
    runs = {regime: {"base": {}, "plain": {}, "ovt": {}} for regime in REGIMES}
    for regime in REGIMES:
        base_figures = evaluate(base, exports[regime], "test")
        for seed in range(args.seeds):
            runs[regime]["base"][seed] = base_figures
            for method, weight in (("plain", 0.0), ("ovt", chosen[regime])):
                run = fine_tune(base, exports[regime], out / "test" / f"{regime}-{method}-seed{seed}", weight=weight, seed=seed, steps=args.steps)
                runs[regime][method][seed] = evaluate(run, exports[regime], "test")
                print(f"  {regime} {method} seed {seed}: {runs[regime][method][seed]}", flush=True)

    settings = {"date": dt.date.today().isoformat(), "seeds": args.seeds, "steps": args.steps,
                "pretrain_steps": args.pretrain_steps, "chosen_weight": chosen, "validation": validation,
                "canonical": CANONICAL, "minutes": round((time.perf_counter() - started) / 60, 1)}
    summary = summarise(runs)
    (out / "results.json").write_text(json.dumps({"settings": settings, "summary": summary, "runs": runs}, indent=1))
    (out / "results.md").write_text(markdown(summary, settings))
    print(markdown(summary, settings))
    print(f"done in {settings['minutes']} min; {out / 'results.md'}")


if __name__ == "__main__":
    main()
