"""Where a pretrained model's files are: a local folder, the local Hugging Face cache, or the Hub.

Shared by the caption stage (its LLaVA) and by train-ovt and eval (their CLIP). The cache is looked
in first, without any request. Only when the model is not there is the Hub asked, once and
briefly: transformers' own downloads retry every file with backoff, which offline turns "model
not found" into a minute of retry messages and a traceback.

Nothing heavy is imported here, and huggingface_hub only inside the functions that need it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any


def looks_like_path(model_id: str) -> bool:
    """True when `model_id` can only be a folder: a Hub id is "name" or "owner/name"."""
    return (
        Path(model_id).expanduser().exists()
        or model_id.startswith((".", "/", "~"))
        or model_id.count("/") > 1
        or (os.sep != "/" and os.sep in model_id)
    )


def cached_file(model_id: str, filename: str = "config.json", revision: str | None = None) -> Path | None:
    """`filename` of `model_id`'s cached snapshot (revision or main), or None; no network."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # no huggingface_hub, hence no cache to look in
        return None
    try:
        found = try_to_load_from_cache(model_id, filename, revision=revision)
    except ValueError:  # not a valid repo id
        return None
    return Path(found) if isinstance(found, str) else None


WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


def local_revision(model_id: str, revision: str | None = None) -> str:
    """Which weights `model_id` means, from local files only (fingerprints of captions, training runs).

    A local folder: "local:" + a hash of its config.json and its weight files' names and sizes
    (hashing gigabytes of weights would cost more than the work). A Hub id in the cache: the
    commit of its snapshot. Otherwise the explicit revision, or "unresolved"."""
    folder = Path(model_id).expanduser()
    if folder.is_dir():
        digest = hashlib.sha256()
        config = folder / "config.json"
        digest.update(config.read_bytes() if config.is_file() else b"")
        weights = {(path.name, path.stat().st_size) for pattern in WEIGHT_PATTERNS for path in folder.glob(pattern)}
        digest.update(json.dumps(sorted(weights)).encode())
        return "local:" + digest.hexdigest()[:16]
    cached_config = cached_file(model_id, "config.json", revision)
    if cached_config is not None:
        return cached_config.parent.name  # snapshots/<commit>/config.json
    return revision or "unresolved"


def offline_requested() -> bool:
    from huggingface_hub import constants

    # huggingface_hub reads HF_HUB_OFFLINE at import; one set later still says what the user wants.
    flags = (os.environ.get(name, "").upper() for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return constants.is_offline_mode() or any(flag in {"1", "ON", "YES", "TRUE"} for flag in flags)


def cache_dir() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def hub_name() -> str:
    from huggingface_hub import constants

    return f"the Hugging Face Hub at {constants.ENDPOINT}"


def download_command(model_id: str, revision: str | None = None) -> str:
    return f"hf download {model_id}" + (f" --revision {revision}" if revision else "")


def ask_hub(model_id: str, revision: str | None, timeout_s: float) -> Any:
    """The Hub's `ModelInfo` for `model_id` (its `.sha` is the commit it would serve), within
    `timeout_s`, or the client's own exception (TimeoutError when nothing answered in time).

    `model_info` is a single request without retries. It runs in a daemon thread because httpx's
    timeout does not bound DNS resolution, which can hang on a machine without network.
    """
    from huggingface_hub import HfApi

    failures: list[Exception] = []
    answers: list[Any] = []

    def ask() -> None:
        try:
            answers.append(HfApi().model_info(model_id, revision=revision, timeout=timeout_s))
        except Exception as error:  # noqa: BLE001 - reported by the caller, whatever it is
            failures.append(error)

    probe = threading.Thread(target=ask, name="hf-hub-probe", daemon=True)
    probe.start()
    probe.join(timeout_s)
    if probe.is_alive():
        raise TimeoutError(f"no answer within {timeout_s:g} s")
    if failures:
        raise failures[0]
    return answers[0] if answers else None


def hub_failure(error: Exception) -> str:
    """What an `ask_hub` failure means: "revision", "gated", "missing" (no such model, or private)
    or "unreachable" (no network, a silent or broken endpoint)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(error, RevisionNotFoundError):
        return "revision"
    if isinstance(error, GatedRepoError):
        return "gated"
    status = getattr(getattr(error, "response", None), "status_code", None)
    # Hub mirrors (HF_ENDPOINT) may answer a bare 401/404 without the Hub's X-Error-Code header.
    if isinstance(error, RepositoryNotFoundError) or status in (401, 403, 404):
        return "missing"
    return "unreachable"
