"""Checkpoints that explain themselves, are committed atomically, and resume a run.

A checkpoint folder `OUTPUT/checkpoints/step-00001000/` holds:
  ovt_config.json          format, step, the full TrainOVTConfig, which base CLIP it sits on
  adapter/                 the LoRA adapter, in peft's own format (PeftModel.from_pretrained reads it)
  viformer.safetensors     VIFormer weights
  tokenizer files, preprocessor_config.json   so the checkpoint embeds text and images alone
  base-model/              only for clip_model "tiny-random": the random base (under 1 MB)
  trainer_state.pt         optimizer state, for resume only
The base CLIP's own weights are not copied: they are the pretrained ones, unchanged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch

from mvcap_build.train.config import TrainOVTConfig
from mvcap_build.train.model import OVTModel, build_ovt_model
from mvcap_build.train.preprocess import PREPROCESSOR_FILE, ImageTransform

FORMAT = "mvcap-ovt-checkpoint/1"
CONFIG_FILE = "ovt_config.json"
ADAPTER_DIR = "adapter"
VIFORMER_FILE = "viformer.safetensors"
STATE_FILE = "trainer_state.pt"
BASE_DIR = "base-model"
RANDOM_INIT_NOTE = (
    "RANDOM INIT: the base CLIP is a tiny randomly initialised model built by "
    "mvcap_build.models.tiny_clip.build_tiny_clip for offline demos and tests; it is not pretrained"
)
_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoint_dir(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"step-{step:08d}"


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The committed checkpoint with the highest step; `.tmp` leftovers of a killed save are ignored."""
    found = [
        (int(m.group(1)), p)
        for p in (Path(output_dir) / "checkpoints").glob("step-*")
        if (m := _STEP_DIR.match(p.name)) and (p / CONFIG_FILE).is_file()
    ]
    return max(found)[1] if found else None


def save_checkpoint(model: OVTModel, config: TrainOVTConfig, step: int, output_dir: Path, *,
                    base_model: str, random_init: bool, tokenizer, transform: ImageTransform,
                    optimizer_state: dict | None = None, miner_state: dict | None = None) -> Path:
    """Write the checkpoint of `step` to a temporary folder, then move it into place."""
    from safetensors.torch import save_file

    final = checkpoint_dir(output_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.clip.save_pretrained(tmp / ADAPTER_DIR)
    save_file({k: v.contiguous() for k, v in model.head_state_dict().items()}, tmp / VIFORMER_FILE)
    tokenizer.save_pretrained(tmp)
    (tmp / PREPROCESSOR_FILE).write_text(json.dumps(transform.to_dict(), indent=2))
    if random_init:
        shutil.copytree(base_model, tmp / BASE_DIR)
    torch.save({"step": step, "optimizer": optimizer_state, "miner": miner_state or {}}, tmp / STATE_FILE)
    meta = {
        "format": FORMAT,
        "step": step,
        "base_model": BASE_DIR if random_init else base_model,
        "base_model_note": RANDOM_INIT_NOTE if random_init else None,
        "config": config.model_dump(mode="json"),
    }
    (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2))  # written last: the commit marker
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def read_checkpoint_config(path: Path) -> dict:
    """The checkpoint's ovt_config.json, with a clear error when `path` is not a checkpoint."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{path} is not an OVT checkpoint (no {CONFIG_FILE})")
    meta = json.loads(file.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{file}: unknown format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def load_trainable(model: OVTModel, path: Path) -> None:
    """Put a checkpoint's LoRA and VIFormer weights into a model built with the same config."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    adapter = load_file(Path(path) / ADAPTER_DIR / "adapter_model.safetensors")
    result = set_peft_model_state_dict(model.clip, adapter)
    missing = [k for k in result.missing_keys if ".lora_" in k]
    if result.unexpected_keys or missing:
        raise ValueError(f"{path}: adapter does not fit the model "
                         f"(unexpected {result.unexpected_keys[:3]}, missing {missing[:3]})")
    model.load_head_state_dict(load_file(Path(path) / VIFORMER_FILE))


def load_optimizer_state(path: Path) -> tuple[int, dict | None]:
    state = torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=True)
    return state["step"], state["optimizer"]


def load_miner_state(path: Path) -> dict:
    """The hard-view miner's embedding bank ({} for in-batch mining and older checkpoints)."""
    return torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=True).get("miner") or {}


def load_ovt_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> OVTModel:
    """Rebuild the trained model: base CLIP + LoRA adapter + VIFormer, with its tokenizer and
    image transform attached (`model.embed_images`, `model.embed_texts`), in eval mode."""
    from transformers import AutoTokenizer

    path = Path(path)
    meta = read_checkpoint_config(path)
    config = TrainOVTConfig(**meta["config"])
    base = path / meta["base_model"]
    model = build_ovt_model(config, str(base) if base.is_dir() else meta["base_model"])
    load_trainable(model, path)
    model.tokenizer = AutoTokenizer.from_pretrained(path)
    model.transform = ImageTransform.from_pretrained(path, config.image_size)
    return model.to(device).eval()
