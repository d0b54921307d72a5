"""The OVT training loop, top to bottom: data, model, resume, steps, checkpoints.

Runs under `accelerate` (CPU, one GPU, or `accelerate launch` for several). Rerunning with the
same output folder resumes from its latest checkpoint; a higher `max_steps` trains further.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

from mvcap_build.train.config import ARCHITECTURE_FIELDS, TINY_RANDOM, TrainOVTConfig

log = logging.getLogger(__name__)


def train_ovt(config: TrainOVTConfig, export_dir: str | Path, output_dir: str | Path, images: str = "auto") -> Path:
    """Train on the shards in `export_dir`; return the final checkpoint's folder."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import AutoTokenizer

    from mvcap_build.train import checkpoint as ckpt
    from mvcap_build.train.data import ExportData, OVTBatches
    from mvcap_build.train.distributed import gather, gather_with_grad
    from mvcap_build.train.loss import ContrastiveLoss, ViewConsistencyLoss
    from mvcap_build.train.model import build_ovt_model
    from mvcap_build.train.preprocess import ImageTransform
    from mvcap_build.train.schedule import lr_at

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our log lines report progress; theirs would interleave
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)  # peft vs transformers 5

    output_dir = Path(output_dir)
    data = ExportData.open(export_dir, images)  # fail on bad input before any model loads
    # cpu=True where there is no GPU: then `accelerate launch` on CPUs runs distributed (gloo)
    accelerator = Accelerator(mixed_precision=config.mixed_precision, cpu=not torch.cuda.is_available())
    set_seed(config.seed)

    base_model, random_init = _resolve_base_model(config, data, output_dir, accelerator)
    model = build_ovt_model(config, base_model)
    vision_size = model.base.config.vision_config.image_size
    if config.image_size not in (None, vision_size):
        raise ValueError(f"image_size {config.image_size} does not match the model's {vision_size}")
    config = config.model_copy(update={"image_size": vision_size})
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    transform = ImageTransform.from_pretrained(base_model, vision_size)

    latest = ckpt.latest_checkpoint(output_dir)
    start, optimizer_state = 0, None
    if latest is not None:
        _check_resumable(ckpt.read_checkpoint_config(latest)["config"], config, latest)
        ckpt.load_trainable(model, latest)
        start, optimizer_state = ckpt.load_optimizer_state(latest)
        if start >= config.max_steps:
            log.info("%s is already at step %d >= max_steps; nothing to do", latest, start)
            return latest
        log.info("resuming from %s (step %d)", latest, start)

    params = [p for p in model.parameters() if p.requires_grad]  # LoRA + VIFormer only
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, betas=config.betas)
    model, optimizer = accelerator.prepare(model, optimizer)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)

    aux, aux_per_batch = None, 0
    if config.aux_data is not None:
        from mvcap_build.train.aux_data import AuxSource

        aux = AuxSource.open(config.aux_data, config.aux_classnames, images)
        aux_per_batch = max(1, round(config.aux_ratio * config.objects_per_batch * config.views_per_object))
    batches = OVTBatches(data, tokenizer, transform, objects=config.objects_per_batch,
                         views=config.views_per_object, seed=config.seed, start=start,
                         stop=config.max_steps, rank=accelerator.process_index,
                         world_size=accelerator.num_processes, augment=config.augment,
                         aux=aux, aux_per_batch=aux_per_batch)
    loader = torch.utils.data.DataLoader(batches, batch_size=None, num_workers=config.num_workers)
    contrastive = ContrastiveLoss()
    consistency = ViewConsistencyLoss(config.margin, config.consistency_weight)
    miner = make_miner(config, data, accelerator.unwrap_model(model).base.config.projection_dim, accelerator.device)
    steps_per_epoch = max(1, data.num_objects // (config.objects_per_batch * accelerator.num_processes))
    if latest is not None and (miner_state := ckpt.load_miner_state(latest)):
        miner.load_state_dict(miner_state)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.json").write_text(json.dumps(config.model_dump(mode="json"), indent=2))
        _truncate_log(output_dir, start)
        log.info("training %d -> %d steps on %d objects (%s); trainable params: %d",
                 start, config.max_steps, data.num_objects, accelerator.device,
                 sum(p.numel() for p in params))

    def save(step: int) -> Path | None:
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            return None
        return ckpt.save_checkpoint(
            accelerator.unwrap_model(model), config, step, output_dir, base_model=base_model,
            random_init=random_init, tokenizer=tokenizer, transform=transform,
            optimizer_state=optimizer.state_dict(), miner_state=miner.state_dict(),
        )

    model.train()
    final, started = None, time.perf_counter()
    for batch in loader:
        step = batch["step"]  # 0-based; `done` steps are complete after this one
        lr = lr_at(step, base_lr=config.lr, warmup_steps=config.warmup_steps,
                   max_steps=config.max_steps, schedule=config.schedule,
                   min_lr_ratio=config.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        device = accelerator.device
        if config.mining == "full_pass" and (step % steps_per_epoch == 0 or not miner.filled):
            fill_bank(accelerator.unwrap_model(model), data, transform, miner, accelerator)
            model.train()  # the pass ran in eval mode (no dropout); training goes on in train mode
        out = model(batch["pixel_values"].to(device), batch["input_ids"].to(device),
                    batch["attention_mask"].to(device))
        image, text = out["image_embeds"], out["text_embeds"]
        obj_ids, rows = batch["obj_ids"].to(device), batch["rows"].to(device)
        multiview = image[: len(obj_ids)]  # aux pairs (if any) follow the multi-view ones
        # Aux rows get ids no object has, distinct across processes: never masked as same-object.
        aux_ids = -1 - (accelerator.process_index * len(image) + torch.arange(len(image) - len(obj_ids), device=device))
        ids, captioned = torch.cat([obj_ids, aux_ids]), batch["captioned"].to(device)
        if config.gather_negatives:
            image, text, ids, captioned = gather_with_grad(image), gather_with_grad(text), gather(ids), gather(captioned)
        terms = contrastive(image[captioned], text[captioned], out["logit_scale"], ids[captioned])
        terms |= consistency(multiview, miner.targets(multiview, rows, obj_ids))
        if config.mining == "bank":  # the only miner that learns from passing batches
            miner.observe(gather(rows), gather(multiview.detach()))
        loss = sum(terms.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {step}: lower lr")
        accelerator.backward(loss)
        if config.grad_clip > 0:
            accelerator.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        done = step + 1
        if accelerator.is_main_process and (done % config.log_every == 0 or done == config.max_steps):
            record = {"step": done, "lr": lr, "loss": loss.item(),
                      **{k: v.item() for k, v in terms.items()},
                      "s_per_step": (time.perf_counter() - started) / (done - start)}
            _log_record(output_dir, record, config.max_steps)
        if done % config.save_every == 0 or done == config.max_steps:
            final = save(done)
    return final if final is not None else ckpt.checkpoint_dir(output_dir, config.max_steps)


def make_miner(config: TrainOVTConfig, data, dim: int, device):
    """The hard-view miner `config.mining` names (see mining.py)."""
    from mvcap_build.train.mining import BankMiner, BatchMiner

    if config.mining == "batch":
        return BatchMiner(config.hard_views, config.anchor, config.knn_neighbors, config.views_per_object)
    return BankMiner(data.groups, len(data.dataset), dim, k=config.hard_views, method=config.anchor,
                     neighbors=config.knn_neighbors, update=config.mining == "bank", device=device)


def fill_bank(model, data, transform, miner, accelerator, batch_size: int = 256) -> None:
    """The paper's full pass: every view embedded in eval mode, no grad, into the miner's bank.
    Processes split each block of rows and share their embeddings."""
    import torch

    model.eval()
    world, rank = accelerator.num_processes, accelerator.process_index
    total = len(data.dataset)
    with torch.no_grad():
        for start in range(0, total, batch_size * world):
            rows = list(range(start + rank * batch_size, min(start + (rank + 1) * batch_size, total)))
            rows += [rows[-1] if rows else total - 1] * (batch_size - len(rows))  # equal sizes to gather
            records = data.dataset[rows]
            pixels = torch.stack([transform(data.load_image(im)) for im in records["image"]]).to(accelerator.device)
            embeddings = model.encode_image(pixels)
            miner.fill(accelerator.gather(torch.tensor(rows, device=accelerator.device)), accelerator.gather(embeddings))


def _resolve_base_model(config, data, output_dir: Path, accelerator) -> tuple[str, bool]:
    """The CLIP to start from, and whether it is a random tiny one built here.

    "tiny-random" is built once into OUTPUT/base-model (from the dataset's captions) and reused
    on resume: rebuilding would be the same weights, but reusing makes that obvious.
    """
    if config.clip_model != TINY_RANDOM:
        return config.clip_model, False
    from mvcap_build.models.tiny_clip import build_tiny_clip

    base = output_dir / "base-model"
    if accelerator.is_main_process and not (base / "config.json").is_file():
        log.warning("clip_model=tiny-random: building a RANDOMLY INITIALISED tiny CLIP in %s", base)
        build_tiny_clip(base, texts=data.captions(), image_size=config.image_size or 64,
                        seed=config.seed)
    accelerator.wait_for_everyone()
    return str(base), True


def _check_resumable(saved: dict, config: TrainOVTConfig, path: Path) -> None:
    """Refuse to resume into weights of another shape, with the fields that differ."""
    differ = {f: (saved.get(f), getattr(config, f)) for f in ARCHITECTURE_FIELDS
              if saved.get(f) != getattr(config, f)}
    if differ:
        raise ValueError(f"cannot resume from {path}: {differ} (checkpoint, now) differ; "
                         "use a new output folder or the checkpoint's settings")


def _truncate_log(output_dir: Path, start: int) -> None:
    """Drop log lines past the checkpoint we resume from: those steps are about to be redone."""
    path = output_dir / "train_log.jsonl"
    if path.is_file():
        lines = [ln for ln in path.read_text().splitlines() if json.loads(ln)["step"] <= start]
        path.write_text("".join(ln + "\n" for ln in lines))


def _log_record(output_dir: Path, record: dict, max_steps: int) -> None:
    """One line to the log and one JSON line to OUTPUT/train_log.jsonl (appended on resume)."""
    terms = " ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "step")
    log.info("step %d/%d %s", record["step"], max_steps, terms)
    with open(output_dir / "train_log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
