"""What to evaluate, named by a spec string, and loaded one at a time (the OVT model itself is
mvcap_build.ovt.model, its loading mvcap_build.ovt.checkpoint).

A spec is one of:
  an OVT checkpoint folder      holds ovt_config.json (`RUN/checkpoints/step-N`)
  a training run folder         holds checkpoints/: its latest committed checkpoint is used
  a local CLIP folder           a transformers CLIPModel (config.json + weights + tokenizer)
  anything else                 a Hub id of a CLIPModel (`openai/clip-vit-base-patch32`)
Every loaded model offers `embed_images`, `embed_texts`, `encode_image`, `.transform` and
`.tokenizer`, in eval mode; a plain CLIP is wrapped so it does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mvcap_build.clip.loading import clip_folder
from mvcap_build.errors import ConfigError, EnvironmentBroken, UserError
from mvcap_build.ovt.checkpoint import CONFIG_FILE, latest_checkpoint


@dataclass
class ModelSpec:
    name: str  # the column heading in the report
    spec: str  # as the user gave it
    kind: str  # "ovt" or "clip"
    location: str  # checkpoint folder, CLIP folder or Hub id
    details: dict = field(default_factory=dict)  # step, base model

    def describe(self) -> dict:
        return {"name": self.name, "spec": self.spec, "kind": self.kind, "location": self.location, **self.details}

    def load(self, device: str):
        """The model, on `device`, in eval mode; a load failure is a user error (wrong path, offline)."""
        try:
            if self.kind == "ovt":
                from mvcap_build.ovt.checkpoint import load_ovt_checkpoint

                return load_ovt_checkpoint(self.location, device).eval()
            return load_clip(self.location, device)
        except UserError:
            raise  # already says what is wrong and what to do
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot load {self.spec!r} ({self.kind} at {self.location}): {error}") from error


def resolve_models(specs: list[str], with_base: bool = False) -> list[ModelSpec]:
    """Specs -> ModelSpecs with unique names; `with_base` adds each OVT model's base CLIP after it."""
    resolved: list[ModelSpec] = []
    for spec in specs:
        model = resolve_model(spec)
        resolved.append(model)
        if with_base and model.kind == "ovt":
            resolved.append(_base_of(model))
    unique, seen = [], set()
    for model in resolved:
        local = Path(model.location)
        identity = str(local.resolve()) if local.is_dir() else model.location
        if identity in seen:
            continue  # the same model twice (e.g. two checkpoints on one Hub base)
        seen.add(identity)
        taken = {m.name for m in unique}
        if model.name in taken:
            model.name = next(
                f"{model.name} #{i}" for i in range(2, len(unique) + 3) if f"{model.name} #{i}" not in taken
            )
        unique.append(model)
    return unique


def resolve_model(spec: str) -> ModelSpec:
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / CONFIG_FILE).is_file():
            return _ovt(spec, path)
        if (path / "checkpoints").is_dir():
            latest = latest_checkpoint(path)
            if latest is None:
                raise ConfigError(
                    f"{path} is a training run with no committed checkpoint yet (checkpoints/step-*/{CONFIG_FILE})"
                )
            return _ovt(spec, latest)
        if (path / "config.json").is_file():
            clip_folder(str(path))  # a folder of another model is one line now, not at its turn to load
            return ModelSpec(_clip_folder_name(path), spec, "clip", str(path))
        raise ConfigError(
            f"{path} is neither an OVT checkpoint ({CONFIG_FILE}), a training run (checkpoints/) "
            "nor a CLIP model folder (config.json)"
        )
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ConfigError(f"model not found: {spec} is not a folder (a Hub id is OWNER/NAME)")
    clip_folder(spec)  # the cache, else the Hub asked once: offline or unknown is one line, before any work
    return ModelSpec(spec, spec, "clip", spec)


def _ovt(spec: str, checkpoint: Path) -> ModelSpec:
    try:
        meta = json.loads((checkpoint / CONFIG_FILE).read_text("utf-8"))
    except ValueError as error:
        raise ConfigError(f"{checkpoint / CONFIG_FILE}: not valid JSON ({error}); the checkpoint is damaged") from None
    step = meta.get("step")
    if checkpoint.parent.name == "checkpoints":
        name = f"{checkpoint.parent.parent.name}@{step}"
    else:
        name = checkpoint.name
    base = meta.get("base_model")
    details = {"step": step, "base_model": base}
    if meta.get("base_model_note"):
        details["base_model_note"] = meta["base_model_note"]
    return ModelSpec(name, spec, "ovt", str(checkpoint), details)


def _base_of(model: ModelSpec) -> ModelSpec:
    base = model.details.get("base_model")
    if not base:
        raise ConfigError(f"{model.location}/{CONFIG_FILE} does not name its base model")
    local = Path(model.location) / base
    if local.is_dir():
        return ModelSpec(_clip_folder_name(local), f"base of {model.spec}", "clip", str(local))
    return ModelSpec(base, f"base of {model.spec}", "clip", base)


def _clip_folder_name(path: Path) -> str:
    """A folder's name; a checkpoint's copied `base-model` is named after its run."""
    path = path.resolve()
    if path.name != "base-model":
        return path.name
    parent = path.parent
    run = parent.parent.parent if parent.parent.name == "checkpoints" else parent
    return f"{run.name}/base-model"


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise EnvironmentBroken("--device cuda, but torch sees no CUDA device (use --device cpu or auto)")
    return device


def load_clip(location: str, device: str):
    """A transformers CLIPModel with its tokenizer and image transform, as a `CLIPEncoder`; a Hub
    id is loaded from the local cache, or downloaded first (see clip/loading.py)."""
    from mvcap_build.clip.encoding import CLIPEncoder
    from mvcap_build.clip.loading import load_clip_model, load_tokenizer
    from mvcap_build.clip.preprocess import ImageTransform

    folder = clip_folder(location)
    clip = load_clip_model(folder, location)
    tokenizer = load_tokenizer(folder, location)
    transform = ImageTransform.from_pretrained(folder, clip.config.vision_config.image_size)
    return CLIPEncoder(clip, tokenizer, transform).to(device).eval()
