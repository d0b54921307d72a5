"""The paper's training elements beyond the loss: the second source mixed into every batch at its
ratio, augmentation, the fresh temperature, and `preset: paper`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from test_train_ovt import export_dir, fast_config, tiny_clip, write_export  # noqa: E402, F401
from torch_fixtures import _datasets_cache, _one_thread  # noqa: E402, F401

from mvcap_build.clip.preprocess import ImageTransform  # noqa: E402
from mvcap_build.clip.templates import IMAGENET_TEMPLATES  # noqa: E402
from mvcap_build.train.aux_data import AuxSource  # noqa: E402
from mvcap_build.train.config import PAPER_PRESET, TrainOVTConfig  # noqa: E402
from mvcap_build.train.data import ExportData, OVTBatches  # noqa: E402
from mvcap_build.train.trainer import train_ovt  # noqa: E402


@pytest.fixture(scope="module")
def imagefolder(tmp_path_factory) -> tuple[Path, Path]:
    """A 3-class ImageFolder (solid colours) and its class-name file."""
    root = tmp_path_factory.mktemp("imagefolder") / "images"
    for folder, colour in (("n001", (200, 20, 20)), ("n002", (20, 200, 20)), ("n003", (20, 20, 200))):
        (root / folder).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 30), colour).save(root / folder / f"{i}.jpg")
    names = root.parent / "classnames.txt"
    names.write_text("red thing\ngreen thing\nblue thing\n")
    return root, names


def _batches(export_dir, tiny_clip, **kwargs) -> OVTBatches:
    from transformers import AutoTokenizer

    data = ExportData.open(export_dir)
    return OVTBatches(
        data,
        AutoTokenizer.from_pretrained(tiny_clip),
        ImageTransform(32),
        objects=2,
        views=2,
        seed=0,
        start=0,
        stop=10,
        **kwargs,
    )


def test_every_batch_mixes_the_second_source_at_its_ratio(export_dir, tiny_clip, imagefolder):
    from transformers import AutoTokenizer

    aux = AuxSource.open(*imagefolder)
    batch = _batches(export_dir, tiny_clip, aux=aux, aux_per_batch=2)[3]  # 2 objects x 2 views + 2 aux: ratio 0.5
    assert len(batch["pixel_values"]) == 6 and len(batch["input_ids"]) == 6
    assert len(batch["obj_ids"]) == len(batch["rows"]) == 4  # the aux pairs are not objects
    tokenizer = AutoTokenizer.from_pretrained(tiny_clip)
    captions = tokenizer.batch_decode(batch["input_ids"][4:], skip_special_tokens=True)
    names = ("red thing", "green thing", "blue thing")
    rendered = {t.format(n).lower() for t in IMAGENET_TEMPLATES for n in names}
    assert all(" ".join(c.split()) in {" ".join(r.split()) for r in rendered} for c in captions), captions
    # The same batch index draws the same pairs (resume), another index other ones.
    again = _batches(export_dir, tiny_clip, aux=aux, aux_per_batch=2)[3]
    assert torch.equal(again["pixel_values"], batch["pixel_values"])
    images, texts = aux.sample(200, seed=0, index=1)
    assert texts != aux.sample(200, seed=0, index=2)[1]
    assert {n for n in names if any(n in t for t in texts)} == set(names)  # every class is drawn
    assert len(set(texts)) > 50  # and captioned with many templates


def test_aux_source_reads_parquet_with_captions(export_dir):
    aux = AuxSource.open(export_dir)
    images, captions = aux.sample(5, seed=1, index=0)
    assert len(images) == 5 and all(isinstance(c, str) and c.startswith("a ") for c in captions)
    assert all(image.size == (64, 64) for image in images)


def test_training_with_the_mix_and_augmentation(export_dir, imagefolder, tmp_path):
    root, names = imagefolder
    out = tmp_path / "run"
    train_ovt(
        fast_config(max_steps=3, aux_data=root, aux_classnames=names, aux_ratio=0.5, augment=True, logit_scale="fresh"),
        export_dir,
        out,
    )
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 3 and all(np.isfinite(r["loss"]) for r in log)


def test_augmentation_rotates_and_shifts_on_white(export_dir, tiny_clip):
    plain = _batches(export_dir, tiny_clip)[0]["pixel_values"]
    augmented = _batches(export_dir, tiny_clip, augment=True)
    first, again = augmented[0]["pixel_values"], augmented[0]["pixel_values"]
    assert torch.equal(first, again)  # a pure function of (seed, step): resumable
    assert not torch.allclose(first, plain, atol=1e-3)
    white = (1.0 - torch.tensor(ImageTransform(32).mean)) / torch.tensor(ImageTransform(32).std)
    corner = first[:, :, 0, 0]  # renders are on white and rotation fills with white
    assert torch.allclose(corner, white.expand_as(corner), atol=0.05)


def test_fresh_logit_scale_starts_at_one_over_0_07_and_is_checkpointed(export_dir, tmp_path):
    from mvcap_build.ovt.checkpoint import load_ovt_checkpoint

    final = train_ovt(fast_config(max_steps=2, logit_scale="fresh", lr=0.05), export_dir, tmp_path / "run")
    model = load_ovt_checkpoint(final)
    assert model.fresh_logit_scale is not None
    assert model.fresh_logit_scale.requires_grad
    assert abs(model.logit_scale().item() - 1 / 0.07) > 1e-4  # it trained
    assert model.logit_scale().item() == pytest.approx(1 / 0.07, rel=0.2)


def test_paper_preset_fills_what_the_file_does_not_set():
    config = TrainOVTConfig(preset="paper", lr=1e-3)
    assert config.lr == 1e-3  # the file wins
    for field in (
        "anchor",
        "margin",
        "hard_views",
        "viformer_heads",
        "viformer_ff_dim",
        "betas",
        "augment",
        "logit_scale",
        "weight_decay",
        "grad_clip",
        "viformer_weight",
        "lora_alpha",
        "viformer_dropout",
        "viformer_norm",
        "adam_eps",
        "schedule",
        "warmup_steps",
        "min_lr_ratio",
        "mining",
    ):
        assert getattr(config, field) == PAPER_PRESET[field], field
    assert (config.anchor, config.margin, config.hard_views, config.betas) == ("knn", 0.3, 5, (0.9, 0.98))
    # peft's LoraConfig defaults (the paper sets only target_modules), PyTorch's post-norm layer
    # whose dropout the paper's never-undone model.eval() keeps off, AdamW's eps, the epoch cosine.
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (8, 8, 0.0)
    assert (config.viformer_norm, config.viformer_dropout) == ("post", 0.0)
    assert (config.adam_eps, config.schedule, config.warmup_steps) == (1e-6, "cosine_epoch", 0)
    assert TrainOVTConfig(preset="paper").lr * config.min_lr_ratio == pytest.approx(1e-7)  # eta_min
    assert TrainOVTConfig().anchor == "mean"  # no preset: the plain defaults
    assert (TrainOVTConfig().viformer_norm, TrainOVTConfig().adam_eps) == ("pre", 1e-8)


def test_paper_preset_builds_the_model_optimizer_and_schedule_as_the_paper(export_dir, tmp_path):
    """A real run under `preset: paper`: LoRA scaled by alpha / r = 1, a post-norm VIFormer with no
    dropout acting in train mode, AdamW's eps 1e-6, and the lr held per epoch on a cosine to 1e-7."""
    from peft.tuners.lora import LoraLayer

    from mvcap_build.ovt.checkpoint import load_ovt_checkpoint
    from mvcap_build.train.schedule import lr_at

    config = TrainOVTConfig(
        preset="paper",
        clip_model="tiny-random",
        objects_per_batch=2,
        views_per_object=2,
        hard_views=1,
        max_steps=18,
        save_every=100,
        log_every=1,
        num_workers=0,
    )
    out = tmp_path / "run"
    final = train_ovt(config, export_dir, out)
    # Epochs of 6 objects x 4 views / (2 x 2) = 6 steps: three epochs at cos(0), cos(pi/3), cos(2 pi/3).
    lrs = [json.loads(line)["lr"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    floor, peak = 1e-7, 5e-5
    expected = [floor + (peak - floor) * (1 + np.cos(np.pi * e / 3)) / 2 for e in range(3)]
    assert lrs == pytest.approx([lr for lr in expected for _ in range(6)], rel=1e-9)
    assert lrs[0] == pytest.approx(peak)  # no warmup
    assert lr_at(
        6 * 3,
        base_lr=peak,
        warmup_steps=0,
        max_steps=18,
        schedule="cosine_epoch",
        min_lr_ratio=0.002,
        steps_per_epoch=6,
    ) == pytest.approx(floor)  # an epoch 4 would sit on it

    state = torch.load(final / "trainer_state.pt", weights_only=True)
    assert {group["eps"] for group in state["optimizer"]["param_groups"]} == {1e-6}
    assert {tuple(group["betas"]) for group in state["optimizer"]["param_groups"]} == {(0.9, 0.98)}

    model = load_ovt_checkpoint(final).train()  # as the trainer holds it between mining passes
    lora = [m for m in model.modules() if isinstance(m, LoraLayer)]
    assert lora and all(m.scaling["default"] == 1.0 for m in lora)
    assert all(not layer.norm_first for layer in model.viformer.encoder.layers)
    assert all(m.p == 0 for m in model.viformer.modules() if isinstance(m, torch.nn.Dropout))
    x = torch.randn(5, model.base.config.projection_dim)
    with torch.no_grad():
        first, again = model.viformer(x), model.viformer(x)
    assert torch.equal(first, again)  # nothing random acts in train mode
    # Post-norm: each layer ends in a LayerNorm, so the VIFormer's output is one (per row mean 0,
    # unit variance before the last LayerNorm's affine).
    last = model.viformer.encoder.layers[-1].norm2
    normalised = (first - last.bias) / last.weight
    assert torch.allclose(normalised.mean(-1), torch.zeros(5), atol=1e-4)
    assert torch.allclose(normalised.var(-1, unbiased=False), torch.ones(5), atol=1e-2)


def test_views_without_captions_train_only_the_consistency_term(tmp_path):
    """An empty caption marks a view with no text (e.g. extreme views left uncaptioned): it is
    left out of the contrastive loss and still pulled toward its object's anchor."""
    import datasets

    source = write_export(tmp_path / "full")
    blank = tmp_path / "blank" / "data"
    blank.mkdir(parents=True)
    for shard in sorted((source / "data").glob("*.parquet")):
        table = datasets.Dataset.from_parquet(str(shard))
        table = table.map(lambda row: {"caption": "" if row["view_index"] >= 2 else row["caption"]})
        table.to_parquet(str(blank / shard.name))
    export = blank.parent
    from transformers import AutoTokenizer

    from mvcap_build.tiny_models.tiny_clip import build_tiny_clip

    model_dir = build_tiny_clip(tmp_path / "clip", texts=["a red square"])
    data = ExportData.open(export)
    batch = OVTBatches(
        data, AutoTokenizer.from_pretrained(model_dir), ImageTransform(32), objects=3, views=4, seed=0, start=0, stop=2
    )[0]
    views = data.dataset.data.column("view_index").to_numpy()[batch["rows"].numpy()]
    assert batch["captioned"].tolist() == (views < 2).tolist()
    out = tmp_path / "run"
    train_ovt(fast_config(max_steps=2), export, out)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["contrastive_loss"]) and r["consistency_loss"] > 0 for r in log)


def test_the_full_pass_embeds_in_eval_mode(export_dir, tiny_clip):
    """The pass runs without dropout (a train-mode pass would give other embeddings); the trainer
    calls `model.train()` right after it (the paper left `model.eval()` on after mining)."""
    from accelerate import Accelerator

    from mvcap_build.ovt.model import build_ovt_model
    from mvcap_build.train.trainer import fill_bank, make_miner

    config = fast_config(viformer_dropout=0.5, mining="full_pass")
    model = build_ovt_model(config, str(tiny_clip)).train()
    data = ExportData.open(export_dir)
    transform = ImageTransform(64)
    miner = make_miner(config, data, model.base.config.projection_dim, "cpu")
    fill_bank(model, data, transform, miner, Accelerator(cpu=True), batch_size=5, num_workers=1)  # decoded in a worker
    assert miner.seen.all()
    pixels = torch.stack([transform(data.load_image(im)) for im in data.dataset[:]["image"]])
    with torch.no_grad():
        expected = model.eval().encode_image(pixels)
        noisy = model.train().encode_image(pixels)
    assert torch.allclose(miner.bank.float(), expected, atol=2e-3)
    assert not torch.allclose(miner.bank.float(), noisy, atol=2e-3)
