"""Zero-shot scoring of an ImageFolder benchmark (read by `mvcap_build.clip.imagefolder`):
top-1 and top-5, overall and per class folder."""

from __future__ import annotations

import numpy as np

from mvcap_build.clip.imagefolder import ImageFolderBenchmark
from mvcap_build.errors import ConfigError


def evaluate_imagefolder(
    model,
    bench: ImageFolderBenchmark,
    text_weights,
    *,
    batch_size: int,
    workers: int,
    label: str,
    show_progress: bool = True,
) -> tuple[dict, list[dict]]:
    """Zero-shot top-1/top-5 of `model` on `bench`, with `text_weights` (label set x dim) from
    `class_text_embeddings`; also per class. Returns (result, unreadable images)."""
    from PIL import Image

    from mvcap_build.eval.images import embed_in_batches
    from mvcap_build.eval.metrics import accuracy, hits, topk_predictions

    embedded = embed_in_batches(
        model,
        bench.images,
        Image.open,
        total=len(bench.images),
        batch_size=batch_size,
        workers=workers,
        label=label,
        show_progress=show_progress,
    )
    unreadable = [{"path": str(bench.images[p].relative_to(bench.root)), "error": e} for p, e in embedded.unreadable]
    if len(embedded.rows) == 0:
        raise ConfigError(
            f"{bench.root}: none of its {len(bench.images)} images could be read "
            f"(first error: {unreadable[0]['error']})"
        )
    logits = 100.0 * embedded.embeddings @ text_weights.T  # CLIP's scale, as the original; argmax ignores it
    top = topk_predictions(logits).cpu().numpy()
    folder = bench.image_folder[embedded.rows]
    targets = np.asarray(bench.targets)[folder]
    hit1, hit5 = hits(top, targets)
    result = accuracy(hit1, hit5)
    result["classes"] = len(bench.label_set)
    result["per_class"] = {
        f: {"name": bench.names[i], **accuracy(hit1[folder == i], hit5[folder == i])}
        for i, f in enumerate(bench.folders)
    }
    return result, unreadable
