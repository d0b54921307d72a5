"""Checkpoints that explain themselves, are committed atomically, resume a run and load in eval.

A checkpoint folder `OUTPUT/checkpoints/step-00001000/` holds:
  ovt_config.json          format, step, the full TrainOVTConfig (its OVTModelConfig fields rebuild
                           the model), which base CLIP it sits on
  adapter/                 the LoRA adapter, in peft's own format (PeftModel.from_pretrained reads it)
  viformer.safetensors     VIFormer weights
  tokenizer files, preprocessor_config.json   so the checkpoint embeds text and images alone
  base-model/              only for clip_model "tiny-random": the random base (under 1 MB)
  trainer_state.pt         optimizer state, for resume only
  training_keys.txt        the object keys trained on, one a line (see train/provenance.py)
ovt_config.json also records what the run was made from (`provenance`: export digest, training
keys, base model revision, processes), its `fingerprint` (a resume with another one stops) and its
`segments` (from which step each max_steps / save_every / log_every / num_workers was in force).
The base CLIP's own weights are not copied: they are the pretrained ones, unchanged.

Importing this module is cheap (torch loads inside the functions that need it), so eval's model
specs and training provenance read the file names from here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mvcap_build.errors import CheckpointError, InputNotFound
from mvcap_build.ovt.config import OVTModelConfig

if TYPE_CHECKING:
    import torch

    from mvcap_build.clip.preprocess import ImageTransform
    from mvcap_build.ovt.model import OVTModel

FORMAT = "mvcap-ovt-checkpoint/1"
CONFIG_FILE = "ovt_config.json"
ADAPTER_DIR = "adapter"
VIFORMER_FILE = "viformer.safetensors"
STATE_FILE = "trainer_state.pt"
BASE_DIR = "base-model"
KEYS_FILE = "training_keys.txt"  # the object keys trained on, one a line, sorted
RANDOM_INIT_NOTE = (
    "RANDOM INIT: the base CLIP is a tiny randomly initialised model built by "
    "mvcap_build.tiny_models.tiny_clip.build_tiny_clip for offline demos and tests; it is not pretrained"
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


def save_checkpoint(
    model: OVTModel,
    config: OVTModelConfig,
    step: int,
    output_dir: Path,
    *,
    base_model: str,
    random_init: bool,
    tokenizer,
    transform: ImageTransform,
    optimizer_state: dict | None = None,
    miner_state: dict | None = None,
    run: dict | None = None,
    training_keys: Sequence[str] | None = None,
) -> Path:
    """Write the checkpoint of `step` to a temporary folder, then move it into place.
    `config`: the run's whole TrainOVTConfig; `run`: {"provenance", "fingerprint", "segments"} of
    the training run; both stored in ovt_config.json."""
    import torch
    from safetensors.torch import save_file

    from mvcap_build.clip.preprocess import PREPROCESSOR_FILE

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
    if training_keys is not None:
        (tmp / KEYS_FILE).write_text("".join(f"{key}\n" for key in training_keys), encoding="utf-8")
    meta = {
        "format": FORMAT,
        "step": step,
        "base_model": BASE_DIR if random_init else base_model,
        "base_model_note": RANDOM_INIT_NOTE if random_init else None,
        "config": config.model_dump(mode="json"),
        **(run or {}),
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
        raise InputNotFound(
            f"{path} is not an OVT checkpoint (no {CONFIG_FILE}): give a checkpoint folder (RUN/checkpoints/step-N)"
        )
    try:
        meta = json.loads(file.read_text())
    except ValueError as error:
        raise CheckpointError(
            f"{file}: not valid JSON ({error}): the checkpoint is damaged; delete its folder "
            "to resume from the one before"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(
            f"{file}: unknown format {found!r}, expected {FORMAT!r}: not a checkpoint this version of mvcap wrote"
        )
    return meta


def load_trainable(model: OVTModel, path: Path) -> None:
    """Put a checkpoint's LoRA and VIFormer weights into a model built with the same config."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    adapter = load_file(Path(path) / ADAPTER_DIR / "adapter_model.safetensors")
    result = set_peft_model_state_dict(model.clip, adapter)
    missing = [k for k in result.missing_keys if ".lora_" in k]
    if result.unexpected_keys or missing:
        raise CheckpointError(
            f"{path}: adapter does not fit the model "
            f"(unexpected {result.unexpected_keys[:3]}, missing {missing[:3]}): "
            "load it with the settings it was trained with"
        )
    try:
        model.load_head_state_dict(load_file(Path(path) / VIFORMER_FILE))
    except RuntimeError as error:  # torch's shape mismatch: VIFormer settings other than the checkpoint's
        first = str(error).strip().splitlines()[-1].strip()
        raise CheckpointError(
            f"{path}: its VIFormer does not fit the model ({first}): load it with the settings it was trained with"
        ) from error


def load_optimizer_state(path: Path) -> tuple[int, dict | None]:
    import torch

    state = torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=True)
    return state["step"], state["optimizer"]


def load_miner_state(path: Path) -> dict:
    """The hard-view miner's embedding bank ({} for in-batch mining and older checkpoints)."""
    import torch

    return torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=True).get("miner") or {}


def load_ovt_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> OVTModel:
    """Rebuild the trained model: base CLIP + LoRA adapter + VIFormer, with its tokenizer and
    image transform attached (`model.embed_images`, `model.embed_texts`), in eval mode."""
    from mvcap_build.clip.loading import clip_folder, load_tokenizer
    from mvcap_build.clip.preprocess import ImageTransform
    from mvcap_build.ovt.model import build_ovt_model

    path = Path(path)
    meta = read_checkpoint_config(path)
    config = OVTModelConfig.of(meta["config"])
    base = path / meta["base_model"]
    base_model = str(base) if base.is_dir() else meta["base_model"]
    # Its init seed does not matter: every weight it draws is loaded from the checkpoint next.
    model = build_ovt_model(
        config, str(clip_folder(base_model, otherwise=f"or load {path} where its base model is cached"))
    )
    load_trainable(model, path)
    model.tokenizer = load_tokenizer(path, str(path))
    model.transform = ImageTransform.from_pretrained(path, config.image_size)
    return model.to(device).eval()
