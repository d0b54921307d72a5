"""Robust downloads of Objaverse files from the Hub into the `objaverse` package's cache layout.

Why not `objaverse.load_objects`: it uses plain urllib with no timeout and no retry, so one stalled
connection hangs a render farm and one 503 loses an object. Here every request has connect and
read timeouts, transient failures are retried with exponential backoff, every file is checked
(Content-Length, GLB header, gzip CRC) before it is placed, and placement is atomic: a process
killed at any moment leaves at most a `<file>.tmp-<random>` beside the file, never a half file
under its final name.

HTTP goes through `requests` (one Session per thread: Sessions are not documented thread-safe).
`requests` is what `bpy` itself depends on, so it is there wherever Blender is; it honours the
proxy and CA-bundle variables clusters set. The token, Retry-After and backoff follow the policy
of `mvcap_build.http`: the token is not sent on when the Hub redirects to its CDN on another host.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mvcap_build.errors import ManifestError
from mvcap_build.http import BearerToken, backoff_delay, retry_after
from mvcap_build.render.sources.objaverse.errors import (
    CORRUPT_DOWNLOAD,
    DOWNLOAD_FAILED,
    NOT_FOUND,
    AssetUnavailable,
)
from mvcap_build.render.sources.objaverse.integrity import IntegrityError, check_for, check_glb

try:
    import fcntl
except ImportError:  # Windows: no flock, so only old temp files are taken for dead
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
REPO_PREFIX = "datasets/allenai/objaverse/resolve/main"
TMP_MARK = ".tmp-"
CHUNK_BYTES = 1 << 16  # written as it arrives, so a slow download shows progress on disk
STALE_TEMP_WITHOUT_LOCKS_S = 24 * 3600
_GLB_PATH = re.compile(r"^glbs/\d{3}-\d{3}/([A-Za-z0-9_-]+)\.glb$")


def file_url(relpath: str) -> str:
    """The Hub URL of a file of `allenai/objaverse`. `HF_ENDPOINT` is read now, not at import,
    so a mirror set after start-up (or by a test) is used."""
    endpoint = os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    return f"{endpoint.rstrip('/')}/{REPO_PREFIX}/{relpath}"


def _token_auth() -> BearerToken | None:
    token = os.environ.get("HF_TOKEN", "").strip()
    return BearerToken(token) if token else None


class _Failed(Exception):
    """One failed attempt: its reason code, and whether another attempt may succeed."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        retry: bool = True,
        retry_after: float | None = None,
        once_more: bool = False,
    ):
        super().__init__(message)
        self.reason = reason
        self.retry = retry
        self.retry_after = retry_after
        self.once_more = once_more  # not worth all the retries, but one (a proxy's passing error page)


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text[:300]}"


def create_locked_temp(final: Path) -> tuple[Path, int]:
    """A new `<final>.tmp-<random>`, open and flock'ed for as long as this process writes it.

    The lock is what tells a later cleaner that the file is live: the kernel drops it when the
    writer dies, SIGKILL included. A cleaner may delete the file between our open and our lock;
    the inode check sees that and we start again with a fresh name.
    """
    while True:
        temp = final.with_name(f"{final.name}{TMP_MARK}{secrets.token_hex(6)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        if fcntl is None:
            return temp, fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without locks: cleaners cannot lock it either, so it is safe
            return temp, fd
        try:
            if os.stat(temp).st_ino == os.fstat(fd).st_ino:
                return temp, fd
        except FileNotFoundError:
            pass
        os.close(fd)


def remove_stale_temps(final: Path) -> int:
    """Delete temp files of dead attempts at `final` (by any process); live ones are locked."""
    removed = 0
    for leftover in final.parent.glob(glob.escape(final.name) + TMP_MARK + "*"):
        try:
            fd = os.open(leftover, os.O_RDONLY)
        except OSError:
            continue
        try:
            if fcntl is None:
                if time.time() - os.fstat(fd).st_mtime < STALE_TEMP_WITHOUT_LOCKS_S:
                    continue
            else:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live download holds it
            leftover.unlink(missing_ok=True)
            removed += 1
        finally:
            os.close(fd)
    return removed


class HubFiles:
    """Files of the Hub dataset `allenai/objaverse`, mirrored under `cache_dir` with the Hub's
    relative paths, the layout of `objaverse==0.1.7` (`~/.objaverse/hf-objaverse-v1`).

    Thread-safe: one thread at a time fetches a given file (the others wait and find it cached);
    different files download in parallel. Processes sharing a cache may download the same file
    twice, harmlessly: each places a complete copy atomically.
    """

    def __init__(self, cache_dir: Path, *, timeout_s: float = 60.0, retries: int = 4, backoff_s: float = 1.0):
        self.cache_dir = Path(cache_dir).expanduser()
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._thread_local = threading.local()
        self._guard = threading.Lock()
        self._sessions: list[Any] = []
        self._path_locks: dict[str, threading.Lock] = {}

    def local_path(self, relpath: str) -> Path:
        return self.cache_dir / relpath

    def lock_for(self, relpath: str) -> threading.Lock:
        with self._guard:
            return self._path_locks.setdefault(relpath, threading.Lock())

    def ensure(self, relpath: str, *, refresh: bool = False) -> tuple[Path, bool]:
        """The local copy of `relpath`, downloaded if missing (or if `refresh`).

        Returns the path and whether it was downloaded by this call. A cached GLB whose header
        does not match its size (say, cut by a full disk) is downloaded again.
        Raises AssetUnavailable.
        """
        final = self.local_path(relpath)
        with self.lock_for(relpath):
            if not refresh and final.is_file():
                try:
                    if relpath.endswith(".glb"):
                        check_glb(final)
                    return final, False
                except IntegrityError as error:
                    log.warning("cached %s is damaged (%s); downloading it again", final, error)
            final.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(final)
            self._download(relpath, final)
            return final, True

    def close(self) -> None:
        with self._guard:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def _session(self):
        session = getattr(self._thread_local, "session", None)
        if session is None:
            import requests

            session = requests.Session()
            session.headers["User-Agent"] = "mvcap-build (objaverse source)"
            with self._guard:
                self._sessions.append(session)
            self._thread_local.session = session
        return session

    def _download(self, relpath: str, final: Path) -> None:
        url = file_url(relpath)
        check = check_for(relpath)
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                self._download_once(url, final, check)
                return
            except _Failed as failure:
                if failure.reason == NOT_FOUND:
                    raise AssetUnavailable(NOT_FOUND, str(failure)) from None
                if not failure.retry and not (failure.once_more and attempt == 1 and attempts > 1):
                    tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                    raise AssetUnavailable(failure.reason, f"{failure}{tries}") from None
                if attempt == attempts:
                    raise AssetUnavailable(failure.reason, f"{failure} (after {attempts} attempts)") from None
                delay = backoff_delay(attempt, self.backoff_s, failure.retry_after)
                log.warning("download attempt %d/%d failed: %s; retrying in %.1f s", attempt, attempts, failure, delay)
                time.sleep(delay)

    def _download_once(self, url: str, final: Path, check: Callable[[Path], None]) -> None:
        import requests

        try:
            response = self._session().get(
                url,
                headers={"Accept-Encoding": "identity"},  # the exact bytes, so sizes and checks hold
                auth=_token_auth(),
                timeout=(self.timeout_s, self.timeout_s),
                stream=True,
            )
        except requests.RequestException as error:
            raise _Failed(DOWNLOAD_FAILED, f"{url}: {_describe(error)}") from None
        with response:
            status = response.status_code
            if status in (404, 410):
                raise _Failed(NOT_FOUND, f"{url}: HTTP {status}", retry=False)
            if status >= 500 or status in (408, 429):
                raise _Failed(DOWNLOAD_FAILED, f"{url}: HTTP {status}", retry_after=retry_after(response.headers))
            if status in (401, 403):
                hint = "gated or private, or a bad HF_TOKEN"
                raise _Failed(DOWNLOAD_FAILED, f"{url}: HTTP {status} ({hint})", retry=False)
            if status != 200:
                raise _Failed(DOWNLOAD_FAILED, f"{url}: HTTP {status}", retry=False)
            length = response.headers.get("Content-Length", "")
            expected = int(length) if length.isdigit() else None
            self._write_and_place(response, url, final, expected, check)

    def _write_and_place(self, response, url: str, final: Path, expected: int | None, check) -> None:
        from urllib3.exceptions import HTTPError as Urllib3Error
        from urllib3.exceptions import ReadTimeoutError

        temp, fd = create_locked_temp(final)
        placed = False
        received = 0
        try:
            with os.fdopen(fd, "wb", closefd=False) as handle:
                try:
                    for chunk in response.raw.stream(CHUNK_BYTES, decode_content=False):
                        handle.write(chunk)
                        received += len(chunk)
                except (ReadTimeoutError, TimeoutError):
                    raise _Failed(
                        DOWNLOAD_FAILED, f"{url}: no data for {self.timeout_s:g} s after {received} bytes"
                    ) from None
                except (Urllib3Error, ConnectionError) as error:
                    # The connection ended before the body did: the bytes we hold are a cut file.
                    of = f" of {expected}" if expected is not None else ""
                    message = f"{url}: body cut after {received}{of} bytes ({_describe(error)})"
                    raise _Failed(CORRUPT_DOWNLOAD, message) from None
                if expected is not None and received != expected:
                    raise _Failed(CORRUPT_DOWNLOAD, f"{url}: got {received} bytes, Content-Length says {expected}")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                check(temp)
            except IntegrityError as error:
                # All the bytes the server announced came, and they are wrong: the file itself is
                # bad (the Hub holds a few empty GLBs), so asking again once is enough.
                complete = expected is not None and received == expected
                raise _Failed(CORRUPT_DOWNLOAD, f"{url}: {error}", retry=not complete, once_more=complete) from None
            os.replace(temp, final)
            placed = True
        finally:
            os.close(fd)  # drops the lock; after os.replace it guards nothing any more
            if not placed:
                temp.unlink(missing_ok=True)


def glb_relpath(asset: dict[str, Any]) -> str:
    """The Hub path of an asset from the objects table, refusing anything that could escape the
    cache (the table is a file a person may have edited)."""
    path, uid = asset.get("path"), asset.get("uid")
    match = _GLB_PATH.match(path) if isinstance(path, str) else None
    if asset.get("kind") != "objaverse" or match is None or match.group(1) != uid:
        raise ManifestError(
            f"not an objaverse asset: {asset!r}; expected "
            '{"kind": "objaverse", "uid": UID, "path": "glbs/000-NNN/UID.glb"}'
        )
    return path


class AssetFetcher:
    """What the render stage holds per run: `fetch` before rendering an object, `release` after.

    `fetch` may be called from several threads at once (the prefetch pool).
    """

    def __init__(self, files: HubFiles, *, delete_after_render: bool = False) -> None:
        self.files = files
        self.delete_after_render = delete_after_render
        self._guard = threading.Lock()
        self._downloaded: set[str] = set()

    def fetch(self, asset: dict[str, Any]) -> Path:
        """The local GLB of an asset, downloaded if missing. Raises AssetUnavailable."""
        relpath = glb_relpath(asset)
        path, downloaded = self.files.ensure(relpath)
        if downloaded:
            with self._guard:
                self._downloaded.add(relpath)
        return path

    def release(self, asset: dict[str, Any]) -> None:
        """With `delete_after_render`, delete the GLB if this fetcher downloaded it.

        Files that were in the cache before (say, from `objaverse.load_objects`) are the user's
        and are kept.
        """
        if not self.delete_after_render:
            return
        relpath = glb_relpath(asset)
        with self._guard:
            if relpath not in self._downloaded:
                return
            self._downloaded.discard(relpath)
        with self.files.lock_for(relpath):
            self.files.local_path(relpath).unlink(missing_ok=True)

    def close(self) -> None:
        self.files.close()

    def __enter__(self) -> AssetFetcher:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def hub_files(config) -> HubFiles:
    return HubFiles(
        config.resolved_cache_dir(), timeout_s=config.timeout_s, retries=config.retries, backoff_s=config.backoff_s
    )


def make_fetcher(config) -> AssetFetcher:
    """The fetcher for an `ObjaverseSourceConfig`."""
    return AssetFetcher(hub_files(config), delete_after_render=config.delete_after_render)
