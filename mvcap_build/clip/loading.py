"""The CLIP that train-ovt starts from and eval scores: a local folder, a Hub id found in the local
Hugging Face cache, or a Hub id downloaded now.

Whatever the name, the model, its tokenizer and its preprocessor_config.json are then loaded from
one local folder, so loading sends no request (transformers would look up files beside the model
on the Hub, retrying each with backoff). The Hub is asked only for a model the cache lacks, once
and briefly (`hub_models`): offline, an unknown id or a folder that holds no CLIP is one line that
says what to do, within seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

from mvcap_build import hub_models
from mvcap_build.errors import ConfigError, EnvironmentBroken

HUB_TIMEOUT_S = 10.0  # for the one question to the Hub about a model the cache lacks
OTHERWISE = "or pass a local CLIP folder"
# What a CLIP needs from its Hub repo: config, tokenizer and preprocessor files, and one weights format.
_FILE_PATTERNS = ("*.json", "*.txt")


def clip_folder(
    model: str, *, revision: str | None = None, timeout_s: float = HUB_TIMEOUT_S, otherwise: str = OTHERWISE
) -> Path:
    """A local folder holding the transformers CLIPModel `model` names (a folder or a Hub id).

    `otherwise` ends the messages with the caller's other choices ("or pass ...").
    """
    if hub_models.looks_like_path(model):
        folder = Path(model).expanduser()
        if not folder.is_dir():
            raise ConfigError(
                f"CLIP model folder {model} does not exist: check the path, {otherwise}, or a Hub id (OWNER/NAME)"
            )
        return _checked(folder, model, otherwise)
    cached = hub_models.cached_file(model, "config.json", revision)
    if cached is not None:
        return _checked(cached.parent, model, otherwise)  # snapshots/<commit>/
    return _checked(_download(model, revision, timeout_s, otherwise), model, otherwise)


def load_clip_model(folder: Path, model: str):
    """transformers' CLIPModel from `folder` (from `clip_folder(model)`); no request is sent."""
    from transformers import CLIPModel

    try:
        return CLIPModel.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"cannot load CLIP {model!r} from {folder}: {_one_line(error)}. {_refetch(model, folder)}"
        ) from error


def load_tokenizer(folder: Path, model: str):
    """The CLIP's tokenizer from `folder`; no request is sent."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, TypeError) as error:
        raise ConfigError(
            f"cannot load the tokenizer of CLIP {model!r} from {folder}: {_one_line(error)}. {_refetch(model, folder)}"
        ) from error


def _download(model: str, revision: str | None, timeout_s: float, otherwise: str) -> Path:
    """Ask the Hub once whether it has `model`, then fetch the files a CLIP needs into the cache."""
    download = f"`{hub_models.download_command(model, revision)}`"
    if hub_models.offline_requested():
        raise EnvironmentBroken(
            f"model {model!r} is not in the local Hugging Face cache {hub_models.cache_dir()} and HF_HUB_OFFLINE "
            f"is set, so the Hub is not asked: download it on a machine with network ({download}) into this "
            f"cache, {otherwise}, or unset HF_HUB_OFFLINE"
        )
    try:
        info = hub_models.ask_hub(model, revision, timeout_s)
    except Exception as error:  # every failure of the question is reported, whatever it is
        raise _hub_error(model, revision, error, download, otherwise) from error
    files = [sibling.rfilename for sibling in (getattr(info, "siblings", None) or [])]
    weights = ["*.safetensors"] if any(f.endswith(".safetensors") for f in files) or not files else []
    weights = weights or ["*.bin"]
    try:
        from huggingface_hub import snapshot_download

        # revision None fetches main and records refs/main, so the next run finds it in the cache
        return Path(snapshot_download(model, revision=revision, allow_patterns=[*_FILE_PATTERNS, *weights]))
    except Exception as error:  # a failed download is the environment's, whatever it is
        raise EnvironmentBroken(
            f"downloading model {model!r} from {hub_models.hub_name()} failed ({type(error).__name__}: "
            f"{_one_line(error)}): rerun to resume, download it with {download}, {otherwise}"
        ) from error


def _hub_error(model: str, revision: str | None, error: Exception, download: str, otherwise: str) -> Exception:
    hub, failure = hub_models.hub_name(), hub_models.hub_failure(error)
    if failure == "revision":
        return ConfigError(f"model {model!r} has no revision {revision!r} on {hub}: pass a branch, tag or commit")
    if failure == "gated":
        return ConfigError(
            f"model {model!r} is gated on {hub}: accept its terms on the model page and set "
            f"HF_TOKEN to a token of that account (or run `hf auth login`), {otherwise}"
        )
    if failure == "missing":
        return ConfigError(
            f"unknown model {model!r}: it is not in the local Hugging Face cache and does not exist "
            f"on {hub} (or it is private: set HF_TOKEN): check the name, {otherwise}"
        )
    return EnvironmentBroken(
        f"model {model!r} is not in the local Hugging Face cache {hub_models.cache_dir()} and {hub} cannot be "
        f"reached ({type(error).__name__}: {_one_line(error)}): download it on a machine with network "
        f"({download}) into this cache, {otherwise}"
    )


def _checked(folder: Path, model: str, otherwise: str) -> Path:
    """`folder`, once its config.json says it holds a CLIPModel."""
    config = folder / "config.json"
    if not config.is_file():
        raise ConfigError(
            f"{model} is not a CLIP model: {folder} holds no config.json (a folder written by "
            f"save_pretrained holds one), {otherwise}"
        )
    try:
        model_type = json.loads(config.read_text("utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise ConfigError(f"{config}: not a readable model config ({_one_line(error)}), {otherwise}") from error
    if model_type != "clip":
        raise ConfigError(
            f"{model} is not a CLIP model: its config.json says model_type {model_type!r}, and "
            f"a transformers CLIPModel (model_type 'clip') is needed, {otherwise}"
        )
    return folder


def _refetch(model: str, folder: Path) -> str:
    if hub_models.looks_like_path(model):
        return "The folder must hold a whole CLIPModel as save_pretrained writes it (config, weights, tokenizer)."
    return f"Its cached copy is incomplete: fetch it again (`{hub_models.download_command(model)}`)."


def _one_line(error: Exception, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
