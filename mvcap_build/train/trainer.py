"""The OVT training loop, top to bottom: data, model, resume, steps, checkpoints.

Runs under `accelerate` (CPU, one GPU, or `accelerate launch` for several). Rerunning with the
same output folder resumes from its latest checkpoint; a higher `max_steps` trains further. A
resume with other settings, data or base model stops before any work (see provenance.py).
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from mvcap_build.errors import ConfigError, TrainingDiverged
from mvcap_build.train.config import TINY_RANDOM, TrainOVTConfig

log = logging.getLogger(__name__)

# The end of a message about an unusable base model: what else to train from.
CLIP_MODEL_CHOICES = (
    "or set clip_model (--clip-model) to a local CLIP folder, "
    "or to tiny-random (a random tiny CLIP, to try the pipeline)"
)


def train_ovt(
    config: TrainOVTConfig,
    export_dir: str | Path,
    output_dir: str | Path,
    images: str = "auto",
    *,
    redo: bool = False,
    on_start: Callable[[], object] | None = None,
) -> Path:
    """Train on the shards in `export_dir`; return the final checkpoint's folder.

    `redo`: when `output_dir` holds a run made with other settings, data or base model, move it to
    OUTPUT/previous/ and start over (without it, such a resume raises StaleTrainingRun).
    `on_start`: called once (main process) when the checks pass and training starts."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers.utils import logging as hf_logging

    from mvcap_build.clip.loading import clip_folder, load_tokenizer
    from mvcap_build.clip.preprocess import ImageTransform
    from mvcap_build.dataset.atomic import atomic_write_text
    from mvcap_build.ovt import checkpoint as ckpt
    from mvcap_build.ovt.model import build_ovt_model
    from mvcap_build.train.data import ExportData, OVTBatches, sample_batch
    from mvcap_build.train.distributed import gather, gather_with_grad
    from mvcap_build.train.loss import ContrastiveLoss, ViewConsistencyLoss
    from mvcap_build.train.provenance import RunInputs, base_model_revision, run_fingerprint, segments
    from mvcap_build.train.schedule import lr_at

    hf_logging.disable_progress_bar()  # our log lines report progress; theirs would interleave
    warnings.filterwarnings(
        "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
    )  # peft vs transformers 5

    output_dir = Path(output_dir)
    data = ExportData.open(export_dir, images)  # fail on bad input before any model loads
    sample_batch(data.groups, config.objects_per_batch, 1, config.seed, 0)  # too few objects: one line, not in a worker
    # cpu=True where there is no GPU: then `accelerate launch` on CPUs runs distributed (gloo)
    accelerator = Accelerator(mixed_precision=config.mixed_precision, cpu=not torch.cuda.is_available())
    set_seed(config.seed)

    given, world = config, accelerator.num_processes
    inputs = RunInputs.of(data, export_dir, images)
    latest = ckpt.latest_checkpoint(output_dir)
    # Before any model loads: a resume must continue the same run (settings, data, processes).
    if latest is not None and not _may_resume(
        latest, run_fingerprint(config, inputs, world), output_dir, redo, accelerator
    ):
        latest = None

    base_model, random_init = _resolve_base_model(config, data, output_dir, accelerator)
    # The cache first, the Hub asked once: an offline or unknown model is one line, in seconds.
    base_folder = clip_folder(base_model, otherwise=CLIP_MODEL_CHOICES)
    model = build_ovt_model(config, str(base_folder), config.seed)
    vision_size = model.base.config.vision_config.image_size
    if config.image_size not in (None, vision_size):
        raise ConfigError(
            f"image_size {config.image_size} does not match the model's {vision_size}: "
            "leave image_size unset, or set the base model's"
        )
    config = config.model_copy(update={"image_size": vision_size})
    tokenizer = load_tokenizer(base_folder, base_model)
    transform = ImageTransform.from_pretrained(base_folder, vision_size)

    fingerprint = run_fingerprint(config, inputs, world, base_model_revision(base_model))
    if latest is not None and not _may_resume(latest, fingerprint, output_dir, redo, accelerator):
        # Only the base model's revision (or size) differed; the old run, its base-model/ with it,
        # is now in OUTPUT/previous/: start afresh.
        return train_ovt(given, export_dir, output_dir, images, on_start=on_start)
    start, optimizer_state, previous_segments = 0, None, []
    if latest is not None:
        previous_segments = ckpt.read_checkpoint_config(latest).get("segments") or []
        ckpt.load_trainable(model, latest)
        start, optimizer_state = ckpt.load_optimizer_state(latest)
        if start >= config.max_steps:
            log.info("%s is already at step %d >= max_steps; nothing to do", latest, start)
            return latest
        log.info("resuming from %s (step %d)", latest, start)

    params = [p for p in model.parameters() if p.requires_grad]  # LoRA + VIFormer only
    optimizer = torch.optim.AdamW(
        params, lr=config.lr, weight_decay=config.weight_decay, betas=config.betas, eps=config.adam_eps
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)

    aux, aux_per_batch = None, 0
    if config.aux_data is not None:
        from mvcap_build.train.aux_data import AuxSource

        aux = AuxSource.open(config.aux_data, config.aux_classnames, images)
        aux_per_batch = max(1, round(config.aux_ratio * config.objects_per_batch * config.views_per_object))
    batches = OVTBatches(
        data,
        tokenizer,
        transform,
        objects=config.objects_per_batch,
        views=config.views_per_object,
        seed=config.seed,
        start=start,
        stop=config.max_steps,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        augment=config.augment,
        aux=aux,
        aux_per_batch=aux_per_batch,
    )
    loader = torch.utils.data.DataLoader(batches, batch_size=None, num_workers=config.num_workers)
    contrastive = ContrastiveLoss()
    consistency = ViewConsistencyLoss(config.margin, config.consistency_weight)
    miner = make_miner(config, data, accelerator.unwrap_model(model).base.config.projection_dim, accelerator.device)
    # An epoch, for the mining pass and cosine_epoch, is as the paper's: as many views trained as
    # the export has (N / V passes over the objects when objects have N views and batches V).
    steps_per_epoch = max(
        1, len(data.dataset) // (config.objects_per_batch * config.views_per_object * accelerator.num_processes)
    )
    if latest is not None and (miner_state := ckpt.load_miner_state(latest)):
        miner.load_state_dict(miner_state)
    # What the run is made of, and from which step each setting a resume may change was in force.
    run = {
        "provenance": {
            **inputs.describe(),
            "base_model_revision": fingerprint.fields["base_model.revision"],
            "world_size": world,
        },
        "fingerprint": fingerprint.model_dump(),
        "segments": segments(previous_segments, start, config),
    }
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        if on_start is not None:
            on_start()
        atomic_write_text(
            output_dir / "config.json",
            json.dumps(
                {**config.model_dump(mode="json"), "segments": run["segments"], "provenance": run["provenance"]},
                indent=2,
            ),
        )
        _truncate_log(output_dir, start)
        log.info(
            "training %d -> %d steps on %d objects (%s); trainable params: %d",
            start,
            config.max_steps,
            data.num_objects,
            accelerator.device,
            sum(p.numel() for p in params),
        )

    def save(step: int) -> Path | None:
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            return None
        return ckpt.save_checkpoint(
            accelerator.unwrap_model(model),
            config,
            step,
            output_dir,
            base_model=base_model,
            random_init=random_init,
            tokenizer=tokenizer,
            transform=transform,
            optimizer_state=optimizer.state_dict(),
            miner_state=miner.state_dict(),
            run=run,
            training_keys=inputs.keys,
        )

    model.train()
    final, started = None, time.perf_counter()
    for batch in loader:
        step = batch["step"]  # 0-based; `done` steps are complete after this one
        lr = lr_at(
            step,
            base_lr=config.lr,
            warmup_steps=config.warmup_steps,
            max_steps=config.max_steps,
            schedule=config.schedule,
            min_lr_ratio=config.min_lr_ratio,
            steps_per_epoch=steps_per_epoch,
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        device = accelerator.device
        if config.mining != "batch" and (
            not miner.filled or config.mining == "full_pass" and step % steps_per_epoch == 0
        ):
            fill_bank(
                accelerator.unwrap_model(model), data, transform, miner, accelerator, num_workers=config.num_workers
            )
            model.train()  # the pass ran in eval mode (no dropout); training goes on in train mode
        out = model(batch["pixel_values"].to(device), batch["input_ids"].to(device), batch["attention_mask"].to(device))
        image, text = out["image_embeds"], out["text_embeds"]
        obj_ids, rows = batch["obj_ids"].to(device), batch["rows"].to(device)
        multiview = image[: len(obj_ids)]  # aux pairs (if any) follow the multi-view ones
        # Aux rows get ids no object has, distinct across processes: never masked as same-object.
        aux_ids = -1 - (accelerator.process_index * len(image) + torch.arange(len(image) - len(obj_ids), device=device))
        ids, captioned = torch.cat([obj_ids, aux_ids]), batch["captioned"].to(device)
        if config.gather_negatives:
            image, text, ids, captioned = (
                gather_with_grad(image),
                gather_with_grad(text),
                gather(ids),
                gather(captioned),
            )
        terms = contrastive(image[captioned], text[captioned], out["logit_scale"], ids[captioned])
        targets = miner.targets(multiview, rows, obj_ids)
        terms |= consistency(multiview, targets)
        if config.mining == "bank":  # the only miner that learns from passing batches
            miner.observe(gather(rows), gather(multiview.detach()))
        loss = sum(terms.values())
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"loss is {loss.item()} at step {step}: lower lr")
        accelerator.backward(loss)
        if config.grad_clip > 0:
            accelerator.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        done = step + 1
        if accelerator.is_main_process and (done % config.log_every == 0 or done == config.max_steps):
            record = {
                "step": done,
                "lr": lr,
                "loss": loss.item(),
                **{k: v.item() for k, v in terms.items()},
                "hard_rows": int(targets.hard.sum()),  # this process's rows pulled toward anchors
                "s_per_step": (time.perf_counter() - started) / (done - start),
            }
            _log_record(output_dir, record, config.max_steps)
        if done % config.save_every == 0 or done == config.max_steps:
            final = save(done)
    return final if final is not None else ckpt.checkpoint_dir(output_dir, config.max_steps)


def make_miner(config: TrainOVTConfig, data, dim: int, device):
    """The hard-view miner `config.mining` names (see mining.py)."""
    from mvcap_build.train.mining import BankMiner, BatchMiner

    if config.mining == "batch":
        return BatchMiner(config.hard_views, config.anchor, config.knn_neighbors, config.views_per_object)
    return BankMiner(
        data.groups,
        len(data.dataset),
        dim,
        k=config.hard_views,
        method=config.anchor,
        neighbors=config.knn_neighbors,
        update=config.mining == "bank",
        device=device,
    )


def fill_bank(model, data, transform, miner, accelerator, batch_size: int = 256, num_workers: int = 0) -> None:
    """The paper's full pass: every view embedded in eval mode, no grad, into the miner's bank.
    Processes split the rows by blocks and share their embeddings; workers decode the images."""
    import torch

    from mvcap_build.train.data import ViewBlocks

    blocks = ViewBlocks(data, transform, batch_size, accelerator.process_index, accelerator.num_processes)
    model.eval()
    with torch.no_grad():
        for block in torch.utils.data.DataLoader(blocks, batch_size=None, num_workers=num_workers):
            embeddings = model.encode_image(block["pixel_values"].to(accelerator.device))
            miner.fill(accelerator.gather(block["rows"].to(accelerator.device)), accelerator.gather(embeddings))


def _resolve_base_model(config, data, output_dir: Path, accelerator) -> tuple[str, bool]:
    """The CLIP to start from, and whether it is a random tiny one built here.

    "tiny-random" is built once into OUTPUT/base-model (from the dataset's captions) and reused
    on resume: rebuilding would be the same weights, but reusing makes that obvious.
    """
    if config.clip_model != TINY_RANDOM:
        return config.clip_model, False
    from mvcap_build.tiny_models.tiny_clip import build_tiny_clip

    base = output_dir / "base-model"
    if accelerator.is_main_process and not (base / "config.json").is_file():
        log.warning("clip_model=tiny-random: building a RANDOMLY INITIALISED tiny CLIP in %s", base)
        build_tiny_clip(base, texts=data.captions(), image_size=config.image_size or 64, seed=config.seed)
    accelerator.wait_for_everyone()
    return str(base), True


def _may_resume(latest: Path, now, output_dir: Path, redo: bool, accelerator) -> bool:
    """True when `latest` was made by this same run (fingerprint `now`). Otherwise stop, naming
    what differs, or with `redo` move the old run to OUTPUT/previous/ and return False."""
    from mvcap_build.ovt.checkpoint import read_checkpoint_config
    from mvcap_build.train.provenance import (
        StaleTrainingRun,
        move_aside,
        saved_fingerprint,
        stale_fields,
        stale_message,
    )

    differ = stale_fields(saved_fingerprint(read_checkpoint_config(latest)), now)
    if not differ:
        return True
    if not redo:
        raise StaleTrainingRun(stale_message(output_dir, latest, differ))
    if accelerator.is_main_process:
        log.warning("--redo stale: %s was another run; moved it to %s", output_dir, move_aside(output_dir))
    accelerator.wait_for_everyone()
    return False


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
