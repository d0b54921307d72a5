"""Which LLaVA-family model a caption backend's `model:` names, which weights, and where they are.

Shared by the `hf` and `vllm` backends, so both read the same aliases, record the same revision in
caption fingerprints, load from the same place and prompt the model the same way. The generic Hub
machinery (the cache, one short Hub request) is `mvcap_build.hub_models`, shared with the trainer;
this module adds what is particular to caption models: the aliases and the messages.

A Hub id is loaded from the local Hugging Face cache when it is there, without any request. Only
when it is not is the Hub asked, once and briefly: transformers' own downloads retry every file
with backoff, which offline turns "model not found" into minutes of retry messages.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mvcap_build import hub_models
from mvcap_build.errors import EnvironmentBroken

#: Short names accepted for `model`; anything else is a Hub id or a local directory.
MODEL_ALIASES: dict[str, str] = {
    "llava": "llava-hf/llava-1.5-7b-hf",
    "llava-1.5": "llava-hf/llava-1.5-7b-hf",
    "llava-1.5-13b": "llava-hf/llava-1.5-13b-hf",
    "llava-next": "llava-hf/llava-v1.6-mistral-7b-hf",
}
#: The prompt format of LLaVA-1.5, for processors saved without a chat template.
LLAVA_15_FORMAT = "USER: <image>\n{prompt} ASSISTANT:"
_COMMIT = re.compile(r"[0-9a-f]{40}")


class CaptionModelError(EnvironmentBroken):
    """The caption model cannot be had or run here; the message says what to do."""


def resolve_model(model: str) -> str:
    """Turn an alias into its Hub id; return Hub ids and paths unchanged."""
    return MODEL_ALIASES.get(model, model)


def model_revision(model: str, revision: str | None = None) -> str:
    """Which weights `model` means, for fingerprinting captions; reads only local files.

    A local folder: "local:" + a hash of its config.json and its weight files' names and sizes
    (hashing gigabytes of weights would cost more than captioning). A Hub id in the cache: the
    commit of its snapshot. Otherwise the explicit revision, or "unresolved".
    """
    return hub_models.local_revision(resolve_model(model), revision)


def pinned_revision(model: str, revision: str | None = None, hub_timeout_s: float = 10.0) -> str:
    """The commit `model` stands for, as `model_revision` finds it locally, or else as the Hub
    says (one short request): every node of a cluster records the same weights under the same
    name, whether it had them cached or downloads them. Fails fast when neither can tell."""
    found = model_revision(model, revision)
    if found.startswith("local:") or _COMMIT.fullmatch(found):
        return found
    return _hub_commit(resolve_model(model), revision, hub_timeout_s) or found


def model_source(model_id: str, revision: str | None, hub_timeout_s: float) -> tuple[str, dict[str, Any]]:
    """What to hand to from_pretrained: a folder (local or cached snapshot), or a Hub id to download,
    with the keyword arguments that go with it.

    A cached model is loaded from its snapshot folder rather than as a Hub id with
    local_files_only: transformers 5 still sends HEAD requests, with retries, for files it looks
    up beside the model (adapter_config.json when peft is installed), and huggingface_hub fetches
    its agent registry whenever it builds request headers.
    """
    if hub_models.looks_like_path(model_id):
        if not Path(model_id).expanduser().is_dir():
            raise CaptionModelError(
                f"caption model directory {model_id!r} does not exist. Pass a directory written by "
                f"save_pretrained, a Hub id (owner/name) or one of: {', '.join(MODEL_ALIASES)}."
            )
        return model_id, {}
    cached_config = hub_models.cached_file(model_id, "config.json", revision)
    if cached_config is not None:
        return str(cached_config.parent), {"local_files_only": True}
    _hub_commit(model_id, revision, hub_timeout_s)
    return model_id, {"revision": revision}


def format_prompt(processor: Any, prompt: str) -> str:
    """The full text the model sees for one request, with the image placeholder in it: the
    processor's chat template, else LLaVA-1.5's format (also when there is no processor)."""
    if getattr(processor, "chat_template", None):
        conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        return processor.apply_chat_template(conversation, add_generation_prompt=True)
    return LLAVA_15_FORMAT.format(prompt=prompt)


def load_failure_message(model_id: str, source: str, revision: str | None, error: Exception) -> str:
    """Why from_pretrained failed on what `model_source` gave, and what to do about it."""
    lines = [f"cannot load caption model {model_id!r}: {error}"]
    if hub_models.looks_like_path(model_id):
        lines.append(
            "It was read as a local directory: it must hold config.json, the weights and the "
            "processor files, as written by save_pretrained."
        )
    else:
        where = f"its cached copy {source} is incomplete" if source != model_id else "the download failed"
        lines.append(
            f"It was read as a Hub id and {where}: fetch it again "
            f"(`{hub_models.download_command(model_id, revision)}`) or pass a local directory that holds the model."
        )
    return "\n".join(lines)


def _hub_commit(model_id: str, revision: str | None, hub_timeout_s: float) -> str | None:
    """The commit the Hub serves for a model that is not cached; fails fast when it cannot be asked."""
    if hub_models.offline_requested():
        raise CaptionModelError(
            f"caption model {model_id!r} is not in the local Hugging Face cache {hub_models.cache_dir()}, and "
            f"HF_HUB_OFFLINE is set, so the Hub is not asked. Download it on a machine with network "
            f"(`{hub_models.download_command(model_id, revision)}`) into this cache, point --model at a local "
            f"folder, or unset HF_HUB_OFFLINE."
        )
    try:
        info = hub_models.ask_hub(model_id, revision, hub_timeout_s)
    except Exception as error:  # reported in the message, whatever it is
        raise CaptionModelError(_probe_failure_message(model_id, revision, error)) from error
    return info.sha if info is not None else None


def _probe_failure_message(model_id: str, revision: str | None, error: Exception) -> str:
    hub, failure = hub_models.hub_name(), hub_models.hub_failure(error)
    if failure == "revision":
        return f"caption model {model_id!r} has no revision {revision!r} on {hub}: pass a branch, tag or commit."
    if failure == "gated":
        return (
            f"caption model {model_id!r} is gated on {hub}: accept its terms on the model page and set "
            f"HF_TOKEN to a token of that account (or run `hf auth login`)."
        )
    if failure == "missing":
        return (
            f"caption model {model_id!r} does not exist on {hub}, or it is private and needs a token: "
            f"check the name, or set HF_TOKEN (or run `hf auth login`)."
        )
    return (
        f"cannot reach {hub} ({type(error).__name__}: {error}), and {model_id!r} is not in the local "
        f"cache {hub_models.cache_dir()}: download it first (`{hub_models.download_command(model_id, revision)}`), "
        f"point --model at a local folder, or set HF_HUB_OFFLINE=1 to use only the cache."
    )
