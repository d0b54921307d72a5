"""Captioning through any OpenAI-compatible chat-completions server (vLLM, SGLang, hosted APIs).

Each view is one request: the prompt and the image as a data URL. Requests run in a small thread
pool (`max_concurrency` in flight), because a server batches concurrent requests itself and a
client that sends one at a time leaves it idle. Transient trouble (429, 5xx, timeouts, dropped
connections) is retried with exponential backoff, honouring Retry-After (`mvcap_build.http`).

What fails one request is that request's result: an unreadable image, a request the server
rejects (400 "image too large"), an answer without text, or a request still failing after its
retries while others of the batch succeed. What means nothing can work raises
`OpenAIBackendError`: no server at the address, a refused API key, an unknown model or endpoint
(404), or a batch in which no request succeeded and some ran out of retries. The stage then stops
instead of writing a ledger entry for every object.

The API key is read from the environment variable named by `api_key_env`, sent as a bearer token
and never written anywhere: not in results, errors, logs or the fingerprint.
"""

from __future__ import annotations

import base64
import io
import json
import os
import queue
import re
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from mvcap_build.caption.backends.base import IMAGE_ERRORS, CaptionRequest, CaptionResult
from mvcap_build.caption.config import OpenAIBackendConfig
from mvcap_build.errors import ConfigError, EnvironmentBroken
from mvcap_build.http import BearerToken, backoff_delay, retry_after
from mvcap_build.imaging import load_rgb

DEFAULT_BASE_URL = "https://api.openai.com/v1"
BASE_URL_ENV = "OPENAI_BASE_URL"
_DETAIL_CHARS = 300  # server messages are trimmed to this in results and errors
_JPEG_QUALITY = 90  # the default 75 blurs the thin edges a caption may mention
_MIME = {"jpeg": "image/jpeg", "png": "image/png"}


class OpenAIBackendError(EnvironmentBroken):
    """The server cannot caption anything as configured; the message says what to do."""


def resolve_base_url(base_url: str | None) -> str:
    """The configured address, else $OPENAI_BASE_URL, else OpenAI's; read now, not at import."""
    return (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).strip().rstrip("/")


def encode_image(path: str | Path, max_side: int, image_format: str) -> str:
    """The view as models must see it (on white), at most `max_side` long, as a data URL."""
    image = load_rgb(path)
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if image_format == "jpeg":
        image.save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    else:
        image.save(buffer, format="PNG")
    return f"data:{_MIME[image_format]};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


@dataclass(frozen=True)
class _Transient:
    """One attempt that may succeed if tried again."""

    why: str
    unreachable: bool = False  # no connection at all, as opposed to a busy or failing server
    retry_after: float | None = None


@dataclass(frozen=True)
class _GaveUp:
    """A request whose retries ran out on transient failures."""

    last: _Transient
    attempts: int


_ABORTED = object()  # a request abandoned because another one found the backend unusable


class _Call:
    """What the requests of one `caption` call share: whether to stop, and whether the server
    has answered anything yet (which tells "no server" from "a busy server")."""

    def __init__(self) -> None:
        self.abort = threading.Event()
        self.answered = threading.Event()


class OpenAIBackend:
    """Caption views with a vision-language model behind an OpenAI-compatible server."""

    name = "openai"

    @classmethod
    def identity(cls, config: OpenAIBackendConfig) -> dict[str, Any]:
        """What produces the text, for caption fingerprints; asks nothing, and never holds the key."""
        return {
            "backend": cls.name,
            "model": config.model,
            "server": resolve_base_url(config.base_url),
            "max_new_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "image_max_side": config.image_max_side,
            "image_format": config.image_format,
        }

    def __init__(self, config: OpenAIBackendConfig) -> None:
        self.config = config
        self.model_id = config.model
        # The config cannot check this address: it may come from $OPENAI_BASE_URL, read now.
        self.base_url = resolve_base_url(config.base_url)
        if not re.match(r"https?://[^/\s]+", self.base_url):
            raise ConfigError(
                f"caption base_url {self.base_url!r} is not an http(s) address; "
                f"give the server's API root, e.g. http://localhost:8000/v1"
            )
        self.endpoint = f"{self.base_url}/chat/completions"
        self.api_key_env = config.api_key_env
        self.max_concurrency = config.max_concurrency
        self.timeout_s = config.timeout_s
        self.retries = config.retries
        self.backoff_s = config.backoff_s
        self.max_new_tokens = config.max_new_tokens
        self.temperature = config.temperature
        self.image_max_side = config.image_max_side
        self.image_format = config.image_format
        self._key = _read_key(config.api_key_env)
        self._auth = BearerToken(self._key) if self._key else None
        # One session per worker at a time (requests.Session is not thread-safe); kept between
        # calls so connections stay open from batch to batch.
        self._sessions: queue.SimpleQueue = queue.SimpleQueue()

    def caption(self, requests: list[CaptionRequest]) -> list[CaptionResult]:
        """One result per request, in order. Raises OpenAIBackendError when the server cannot be
        used at all; in-flight requests of the call are abandoned then."""
        if not requests:
            return []
        call = _Call()
        pool = ThreadPoolExecutor(
            max_workers=min(self.max_concurrency, len(requests)), thread_name_prefix="openai-caption"
        )
        try:
            futures = [pool.submit(self._caption_or_abort, request, call) for request in requests]
            wait(futures, return_when=FIRST_EXCEPTION)  # the first fatal error stops the call
            for future in futures:
                if future.done() and future.exception() is not None:
                    raise future.exception()
            outcomes = [future.result() for future in futures]
        finally:
            call.abort.set()
            # Requests still in flight end within timeout_s in the background; no need to wait.
            pool.shutdown(wait=False, cancel_futures=True)
        return self._settle(outcomes)

    def close(self) -> None:
        """Close the kept-open connections (optional: they close with the process anyway)."""
        while True:
            try:
                self._sessions.get_nowait().close()
            except queue.Empty:
                return

    # -- one request ---------------------------------------------------------------------------

    def _caption_or_abort(self, request: CaptionRequest, call: _Call) -> CaptionResult | _GaveUp | object:
        try:
            return self._caption_one(request, call)
        except BaseException:
            # Set here, not only by the caller: this worker's next request must not go out
            # before the caller wakes up to the error.
            call.abort.set()
            raise

    def _caption_one(self, request: CaptionRequest, call: _Call) -> CaptionResult | _GaveUp | object:
        """Encode, send and retry one request; raises only for a fatal condition."""
        try:
            data_url = encode_image(request.image_path, self.image_max_side, self.image_format)
        except IMAGE_ERRORS as error:
            return CaptionResult.failed("unreadable_image", f"{request.image_path}: {type(error).__name__}: {error}")
        payload = self._payload(request.prompt, data_url)
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            if call.abort.is_set():
                return _ABORTED
            outcome = self._attempt(payload, call)
            if isinstance(outcome, CaptionResult):
                return outcome
            if attempt < attempts and call.abort.wait(backoff_delay(attempt, self.backoff_s, outcome.retry_after)):
                return _ABORTED
        if outcome.unreachable and not call.answered.is_set():
            raise OpenAIBackendError(self._unreachable_message(outcome, attempts))
        return _GaveUp(outcome, attempts)

    def _payload(self, prompt: str, data_url: str) -> dict[str, Any]:
        content = [{"type": "text", "text": prompt}, {"type": "image_url", "image_url": {"url": data_url}}]
        return {
            "model": self.model_id,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
        }

    def _attempt(self, payload: dict[str, Any], call: _Call) -> CaptionResult | _Transient:
        """One POST: a final result, or a transient failure worth another try."""
        import requests

        try:
            with self._session() as session:
                response = session.post(self.endpoint, json=payload, auth=self._auth, timeout=self.timeout_s)
        except requests.ConnectTimeout as error:  # before the generic Timeout: nobody answered the connect
            return _Transient(f"connection timed out: {self._describe(error)}", unreachable=True)
        except requests.Timeout:
            return _Transient(f"no answer within {self.timeout_s:g} s")
        except requests.ConnectionError as error:
            return _Transient(f"connection failed: {self._describe(error)}", unreachable=True)
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as error:
            # The answer was cut off or garbled on the way: the next one may arrive whole.
            return _Transient(f"answer cut off: {self._describe(error)}")
        except requests.RequestException as error:  # a malformed URL or header: no retry can help
            raise OpenAIBackendError(f"cannot send requests to {self.endpoint}: {self._describe(error)}") from None
        call.answered.set()
        return self._read_response(response)

    def _read_response(self, response) -> CaptionResult | _Transient:
        status = response.status_code
        if status in (401, 403):
            raise OpenAIBackendError(self._refused_key_message(status, self._server_message(response)))
        if status == 404:
            # Wrong model name or wrong base_url: the same for every request, so not a ledger entry.
            raise OpenAIBackendError(
                f"the server at {self.base_url} has no model {self.model_id!r} or no chat-completions "
                f"endpoint at {self.endpoint} (HTTP 404: {self._server_message(response)}): check `model` "
                f"(the name the server serves) and base_url/{BASE_URL_ENV} (its API root, usually ending in /v1)"
            )
        if status in (408, 429) or status >= 500:
            why = f"HTTP {status} {self._server_message(response)}".rstrip()
            return _Transient(why, retry_after=retry_after(response.headers))
        if not 200 <= status < 300:
            return CaptionResult.failed("request_rejected", f"{status} {self._server_message(response)}".rstrip())
        text = _answer_text(response)
        if text is None:
            return CaptionResult.failed(
                "bad_response",
                f"no choices[0].message.content in the answer: {self._trim(response.text) or '(empty body)'}",
            )
        return CaptionResult.ok(text.strip())

    @contextmanager
    def _session(self) -> Iterator[Any]:
        try:
            session = self._sessions.get_nowait()
        except queue.Empty:
            import requests

            session = requests.Session()
            session.headers["User-Agent"] = "mvcap-build (openai caption backend)"
        try:
            yield session
        finally:
            self._sessions.put(session)

    # -- the batch ---------------------------------------------------------------------------

    def _settle(self, outcomes: list[Any]) -> list[CaptionResult]:
        """Turn requests that ran out of retries into `server_busy`, unless none got an answer."""
        gave_up = [outcome for outcome in outcomes if isinstance(outcome, _GaveUp)]
        if gave_up and not any(isinstance(o, CaptionResult) and o.text is not None for o in outcomes):
            raise OpenAIBackendError(
                f"the server at {self.base_url} answered none of {len(outcomes)} requests "
                f"({len(gave_up)} gave up after {gave_up[0].attempts} attempts; last: {gave_up[0].last.why}): "
                f"it is down or overloaded; check it, or lower max_concurrency, raise timeout_s or retries"
            )
        return [
            CaptionResult.failed("server_busy", f"no answer after {o.attempts} attempts; last: {o.last.why}")
            if isinstance(o, _GaveUp)
            else o
            for o in outcomes
        ]

    # -- messages (the key never gets into one) ---------------------------------------------

    def _unreachable_message(self, last: _Transient, attempts: int) -> str:
        return (
            f"cannot reach {self.base_url} after {attempts} attempts ({last.why}): "
            f"start the server or set base_url/{BASE_URL_ENV} to where it listens"
        )

    def _refused_key_message(self, status: int, server_message: str) -> str:
        if self._key:
            advice = f"the server refused the API key in ${self.api_key_env}: set it to a valid key"
        else:
            advice = f"the server wants an API key and ${self.api_key_env} is not set: set it to your key"
        return f"{advice} (HTTP {status} from {self.base_url}: {server_message})"

    def _server_message(self, response) -> str:
        """The server's own words about a failure (OpenAI, vLLM and FastAPI shapes), trimmed."""
        try:
            body = response.json()
        except ValueError:
            return self._trim(response.text)
        if isinstance(body, dict):
            error = body.get("error")
            for candidate in (
                error.get("message") if isinstance(error, dict) else error,
                body.get("message"),
                body.get("detail"),
            ):
                if isinstance(candidate, str) and candidate.strip():
                    return self._trim(candidate)
        return self._trim(json.dumps(body))

    def _describe(self, error: BaseException) -> str:
        return self._trim(f"{type(error).__name__}: {error}")

    def _trim(self, text: str) -> str:
        """One line, short, without the key (servers echo a bad key back, whole or masked)."""
        text = " ".join(str(text).split())
        if self._key:
            text = text.replace(self._key, "<api key>")
        return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."


def _answer_text(response) -> str | None:
    """choices[0].message.content as text, or None when the answer has no text."""
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if isinstance(content, list):  # some servers answer with content parts, as requests send them
        parts = [part.get("text") for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
        content = "".join(parts) if parts else None
    return content if isinstance(content, str) else None


def _read_key(api_key_env: str) -> str | None:
    key = os.environ.get(api_key_env, "").strip()
    if key and (not key.isprintable() or " " in key):
        # requests would reject the header and quote it in its error message.
        raise OpenAIBackendError(f"${api_key_env} holds spaces or control characters: set it to the key alone")
    return key or None
