"""Learning-rate schedule as a pure function of the step.

No scheduler object means no scheduler state to checkpoint: a resumed run recomputes the same
learning rate from the step counter alone.
"""

from __future__ import annotations

import math


def lr_at(
    step: int,
    *,
    base_lr: float,
    warmup_steps: int,
    max_steps: int,
    schedule: str = "cosine",
    min_lr_ratio: float = 0.0,
    steps_per_epoch: int = 1,
) -> float:
    """Learning rate for 0-based `step`: linear warmup, then cosine/linear decay or constant.

    `cosine_epoch` is PyTorch's CosineAnnealingLR stepped once per epoch, as the paper does: the
    rate holds through an epoch and epoch e of E runs at the cosine factor of e / E, so the last
    epoch stays above the floor, which only an (E+1)-th epoch would reach.
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    decay_steps = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    if schedule == "cosine_epoch":
        epochs = max(1, math.ceil(max_steps / steps_per_epoch))
        factor = 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step // steps_per_epoch) / epochs)))
    elif schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "linear":
        factor = 1.0 - progress
    else:
        raise ValueError(f"unknown schedule {schedule!r}: use cosine, linear, constant or cosine_epoch")
    return base_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * factor)
