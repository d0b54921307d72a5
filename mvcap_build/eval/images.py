"""Many image files -> normalised embeddings, in batches, decoded ahead in threads (a model's own
`embed_images`, mvcap_build.clip.encoding, embeds a list of images already in memory).

An image that cannot be decoded is skipped, counted and reported with its error: one corrupt file
in a 50,000-image benchmark should cost one image, not the run. Decoding (PIL) and the resize
release the GIL, so threads keep a GPU fed without worker processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice

import numpy as np

from mvcap_build.progress import progress


@dataclass
class Embedded:
    embeddings: object  # (n_ok, dim) float32 tensor on the model's device, normalised
    rows: np.ndarray  # positions, in the input, of the images that were embedded
    unreadable: list[tuple[int, str]] = field(default_factory=list)  # (position, error)


def embed_in_batches(
    model,
    items: Iterable,
    open_image: Callable,
    *,
    total: int,
    batch_size: int,
    workers: int,
    label: str,
    show_progress: bool = True,
) -> Embedded:
    """Embed every item that `open_image(item)` (a PIL image) can decode, with `model.transform`
    and `model.encode_image`; the next batch decodes while the model runs on this one."""
    import torch

    prepare = _preparer(model.transform, open_image)
    device = next(model.parameters()).device
    chunks, rows, unreadable = [], [], []

    def encode(positions: list[int], futures: list) -> None:
        prepared = [f.result() for f in futures]
        ok = [(p, tensor) for p, (tensor, _) in zip(positions, prepared) if tensor is not None]
        unreadable.extend((p, error) for p, (_, error) in zip(positions, prepared) if error is not None)
        if ok:
            with torch.no_grad():
                chunks.append(model.encode_image(torch.stack([t for _, t in ok]).to(device)).float())
            rows.extend(p for p, _ in ok)
        bar.advance(len(ok))
        bar.advance(len(positions) - len(ok), failed=True)

    with progress(label, total=total, enabled=show_progress) as bar, ThreadPoolExecutor(max(1, workers)) as pool:
        submit = (lambda item: pool.submit(prepare, item)) if workers else (lambda item: _Done(prepare(item)))
        pending = None
        for positions, batch in _batches(items, batch_size):
            ahead = (positions, [submit(item) for item in batch])
            if pending is not None:
                encode(*pending)
            pending = ahead
        if pending is not None:
            encode(*pending)
    embeddings = torch.cat(chunks) if chunks else torch.zeros((0, 0), device=device)
    return Embedded(embeddings, np.asarray(rows, dtype=np.int64), unreadable)


def _preparer(transform, open_image: Callable) -> Callable:
    """item -> (tensor, None), or (None, the error) for an image that cannot be decoded."""

    def prepare(item):
        try:
            with open_image(item) as image:
                image.load()
                return transform(image), None
        except Exception as error:  # noqa: BLE001 - whatever the decoder raises, the image is unreadable
            return None, f"{type(error).__name__}: {error}"

    return prepare


@dataclass
class _Done:
    """A result computed in place, with a Future's `result()` (for workers=0)."""

    value: object

    def result(self):
        return self.value


def _batches(items: Iterable, size: int) -> Iterator[tuple[list[int], list]]:
    iterator, start = iter(items), 0
    while batch := list(islice(iterator, size)):
        yield list(range(start, start + len(batch))), batch
        start += len(batch)
