"""What the paper's mining costs: `train-ovt` with `mining: full_pass` (a no-grad pass in eval
mode over every view at each epoch start, as the paper) against `bank` (one pass at the start,
then refreshed by the batches as they pass) and `batch` (no pass), side by side on one export.

    python benchmarks/ovt_mining.py [--objects 30] [--views 24] [--epochs 2] [--width 32] [--repeats 3]

An epoch is as many training views as the export has (objects x views / (P x V) steps). Per mode
(the median of `repeats` runs, modes interleaved, as the machine's load varies):
- samples/s of `epochs` epochs of training steps, their mining passes included (full_pass: one
  per epoch), timed from the training log after the first step (setup and the start's pass in
  full_pass and bank left out);
- hard rows per batch, against the K x P x V / N that a draw of V of an object's N views holds
  when its K hard views are ranked among all N;
- agreement: the share of the hard views the miner holds at the end that a fresh pass of the
  final model would also choose (the run ends half an epoch after full_pass's last pass).
Tiny random CLIP (`--width 32`) on 64 px training-ready shards; a larger `--width` widens the
vision tower (random weights), so that the model's cost shows beside image decoding.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_root import make_root  # noqa: E402

from mvcap_build.export.config import ExportConfig  # noqa: E402
from mvcap_build.export.stage import ExportStage  # noqa: E402
from mvcap_build.pipeline.stage import RunOptions  # noqa: E402
from mvcap_build.train.config import TrainOVTConfig  # noqa: E402
from mvcap_build.train.data import ExportData  # noqa: E402
from mvcap_build.train.trainer import train_ovt  # noqa: E402

P, V, K = 8, 4, 2


def wide_clip(folder: Path, width: int, texts: list[str]) -> str:
    """The tiny random CLIP, or one whose vision tower and projection are `width` wide (4 layers)."""
    from transformers import CLIPConfig, CLIPModel

    from mvcap_build.tiny_models.tiny_clip import build_tiny_clip

    build_tiny_clip(folder, texts=texts, image_size=64)
    if width > 32:
        config = CLIPConfig.from_pretrained(folder)
        config.vision_config.update(
            {
                "hidden_size": width,
                "intermediate_size": 4 * width,
                "num_hidden_layers": 4,
                "num_attention_heads": width // 32,
            }
        )
        config.projection_dim = width
        CLIPModel(config).save_pretrained(folder)
    return str(folder)


def hard_sets(miner) -> set[int]:
    """The rows a bank miner holds as hard, over every object."""
    import torch.nn.functional as F

    from mvcap_build.train.mining import mine

    table = miner.rows_of
    valid = (table >= 0) & miner.seen[table.clamp_min(0)]
    views = F.normalize(miner.bank[table.clamp_min(0)].float(), dim=-1)
    _, hard = mine(views, valid, miner.k, miner.method, miner.neighbors)
    return set(table[hard].tolist())


def agreement(final: Path, data: ExportData, config: TrainOVTConfig) -> float:
    """Share of the hard views in the checkpoint's bank that a fresh pass of its model also picks."""
    import torch
    from accelerate import Accelerator

    from mvcap_build.ovt.checkpoint import load_ovt_checkpoint
    from mvcap_build.train.trainer import fill_bank, make_miner

    model = load_ovt_checkpoint(final)
    dim = model.base.config.projection_dim
    held = make_miner(config, data, dim, "cpu")
    held.load_state_dict(torch.load(final / "trainer_state.pt", weights_only=True)["miner"])
    fresh = make_miner(config.model_copy(update={"mining": "full_pass"}), data, dim, "cpu")
    fill_bank(model, data, model.transform, fresh, Accelerator(cpu=True))
    a, b = hard_sets(held), hard_sets(fresh)
    return len(a & b) / len(b)


def run_mode(mining: str, export_dir: Path, base: str, steps_per_epoch: int, epochs: int, lr: float, out: Path) -> dict:
    config = TrainOVTConfig(
        clip_model=base,
        objects_per_batch=P,
        views_per_object=V,
        hard_views=K,
        anchor="knn",
        margin=0.3,
        mining=mining,
        lr=lr,
        schedule="constant",
        warmup_steps=0,
        viformer_heads=4,
        save_every=10**6,
        log_every=1,
        num_workers=0,
        max_steps=1 + epochs * steps_per_epoch + steps_per_epoch // 2,
    )
    final = train_ovt(config, export_dir, out, images="training")
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    # s_per_step is cumulative from the loop's start: the time at the end of each step.
    at = [r["s_per_step"] * r["step"] for r in log]
    steps = epochs * steps_per_epoch  # steps 1 .. steps (0-based): passes at every epoch start
    data = ExportData.open(export_dir, "training")
    return {
        "samples_s": steps * P * V / (at[steps] - at[0]),
        "hard_rows": statistics.mean(r["hard_rows"] for r in log),
        "agreement": agreement(final, data, config) if mining != "batch" else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=30)
    parser.add_argument("--views", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--width", type=int, default=32, help="vision tower width (32: the tiny CLIP)")
    parser.add_argument("--lr", type=float, default=1e-3, help="constant, no warmup: the model moves from the start")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mvcap-ovt-mining-"))
    try:
        root = make_root(
            work / "root", args.objects, args.views, resolution=128, distinct_images=args.objects * args.views
        )
        config = ExportConfig.model_validate({"training_images": {"size": 64, "format": "jpeg"}})
        ExportStage(config, RunOptions(progress=False)).run(root)
        data = ExportData.open(root.export_dir, "training")
        n_views = len(data.dataset) / data.num_objects
        steps_per_epoch = len(data.dataset) // (P * V)
        base = wide_clip(work / "clip", args.width, data.captions())
        print(
            f"{data.num_objects} objects x {n_views:.0f} views, batches {P} x {V}, K={K}, "
            f"{steps_per_epoch} steps per epoch, vision width {args.width}, lr {args.lr}"
        )
        print(
            f"{'mining':10} {'samples/s':>10} {'vs bank':>8} {'hard rows/batch':>16} {'expected':>9} {'agreement':>10}"
        )
        modes = ("bank", "full_pass", "batch")
        runs = {m: [] for m in modes}
        for i in range(args.repeats):  # interleaved: a change of load hits every mode
            for mining in modes:
                runs[mining].append(
                    run_mode(
                        mining, root.export_dir, base, steps_per_epoch, args.epochs, args.lr, work / f"{mining}-{i}"
                    )
                )
        median = {m: {k: statistics.median(r[k] for r in runs[m]) for k in runs[m][0]} for m in modes}
        for mining in modes:
            r, expected = median[mining], K * P * (V / n_views if mining != "batch" else 1)
            print(
                f"{mining:10} {r['samples_s']:10.1f} {r['samples_s'] / median['bank']['samples_s']:8.2f} "
                f"{r['hard_rows']:16.2f} {expected:9.2f} {r['agreement']:10.2f}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
