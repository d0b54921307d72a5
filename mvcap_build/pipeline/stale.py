"""How many committed units of a root are stale: made with other settings than the stage's
latest run (for `mvcap status`). Re-captioning is due, for example, after views were re-rendered."""

from __future__ import annotations

import yaml

from mvcap_build.config_io import validate
from mvcap_build.dataset import DatasetRoot
from mvcap_build.dataset.layout import OBJECT_STAGES
from mvcap_build.errors import UserError
from mvcap_build.registry import STAGES


def stale_counts(root: DatasetRoot) -> dict[str, str]:
    """Stage -> stale units as text: a number, "-" (never run here) or "?" with the reason."""
    counts = {}
    for name in OBJECT_STAGES:
        runs = root.run_configs(name)
        if not runs:
            counts[name] = "-"
            continue
        try:
            document = yaml.safe_load(runs[-1].read_text("utf-8")) or {}
            settings = document["config"] if "stage" in document else document  # early runs saved the config alone
            config = validate(STAGES[name].config, settings, str(runs[-1]))
            stage = STAGES[name].load()(config)
            counts[name] = str(len(stage.plan(root).stale))
        except (UserError, OSError) as error:
            counts[name] = f"? ({str(error).splitlines()[0][:80]})"
    return counts
