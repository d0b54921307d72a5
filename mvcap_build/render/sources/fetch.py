"""Sources whose assets live elsewhere (a download, an archive) hand the render stage a fetcher:
`fetch(asset) -> local path`, `release(asset)` once the object is committed. The stage fetches
ahead of the Blender workers (`prefetched`), so a GPU never waits on the network, and a fetch
that fails for good is that object's ledger entry, not the run's end."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class AssetUnavailable(RuntimeError):
    """An asset could not be fetched. `reason` is the ledger code; `detail` says why (with the
    URL but never a token)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # picklable, so it can cross process boundaries (worker pools, Ray)
        return (type(self), (self.reason, self.detail))


class Fetcher(Protocol):
    def fetch(self, asset: dict[str, Any]) -> Path: ...

    def release(self, asset: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def prefetched(
    items: Iterable[T], fetch, *, workers: int, window: int
) -> Iterator[tuple[T, Path | None, AssetUnavailable | None]]:
    """Fetch `fetch(item)` for up to `window` items at once on `workers` threads; yield
    (item, path, None) or (item, None, failure) as each completes, in completion order."""
    items = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
        pending: dict[Future, T] = {}

        def fill() -> None:
            while len(pending) < max(1, window):
                item = next(items, None)
                if item is None:
                    return
                pending[pool.submit(fetch, item)] = item

        fill()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                item = pending.pop(future)
                try:
                    yield item, future.result(), None
                except AssetUnavailable as failure:
                    yield item, None, failure
            fill()
