"""How our HTTP clients (the Objaverse downloader, the OpenAI caption backend) treat a server.

One policy, so the two cannot drift apart: a bearer token that never leaves the host it was meant
for, a server's Retry-After honoured in every form HTTP allows (up to a cap), and exponential
backoff with jitter between attempts. Plain functions over `requests`' objects; `requests` itself
is not imported here, so importing this module costs nothing.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER_S = 60.0  # a server's Retry-After is honoured up to this: longer waits are the retries' job


class BearerToken:
    """`requests` auth that adds the token to the request it is given, and never shows it.

    Passed as `auth=` rather than as a header: no ~/.netrc entry replaces it on the request, and on
    a redirect requests strips the Authorization header when the host (or port, or scheme) changes,
    so a redirect to a CDN gets no token. (A netrc entry for the redirect's own host, if there is
    one, is what requests sends there instead: the user's own credentials for that host.)
    """

    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerToken(<hidden>)"


def retry_after(headers: Mapping[str, str], cap_s: float = MAX_RETRY_AFTER_S) -> float | None:
    """Seconds a server asks us to wait (Retry-After as seconds, integer or not, or as an HTTP date),
    at most `cap_s`; None when the header is missing or means nothing."""
    value = (headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _seconds_until(value)
        if seconds is None:
            return None
        seconds = max(seconds, 0.0)  # a date already past: no wait
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, cap_s)


def _seconds_until(http_date: str) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": HTTP dates are GMT anyway
        when = when.replace(tzinfo=UTC)
    return when.timestamp() - time.time()


def backoff_delay(attempt: int, backoff_s: float, retry_after_s: float | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, ...): `backoff_s` doubled per
    attempt, jittered so concurrent clients that failed together spread out, and never shorter
    than what the server asked for."""
    delay = backoff_s * 2 ** (attempt - 1) * (0.5 + random.random() / 2)
    return max(delay, retry_after_s) if retry_after_s is not None else delay
