"""Light rigs: which lights an object is rendered under, planned on the host and recorded.

A rig is plain data (world colour and strength, suns by the direction they shine from), built
here from the config and the object key, sent to the Blender worker, which only builds what it is
told, and written into the views manifest, so every render says how it was lit.
"""

from __future__ import annotations

import random
from typing import Any

from mvcap_build.render.config import LightingConfig

# (name, azimuth the light comes from, elevation, energy); azimuth 0 = the object's front (-y).
# Key and fill have mirror images below the horizon (turned by 90 degrees so the two keys do not
# cancel each other's shading) and the rim light is level, so a view from below gets as much
# light, and as much shading, as a view from above; the lower key is the bottom light.
_NEUTRAL_SUNS = (
    ("key", -45.0, 45.0, 1.3),
    ("fill", 135.0, 45.0, 0.4),
    ("key_below", 45.0, -45.0, 1.3),
    ("fill_below", -135.0, -45.0, 0.4),
    ("rim", 180.0, 0.0, 0.5),
)
_NEUTRAL_WORLD = 0.25


def light_rig(config: LightingConfig, object_key: str) -> dict[str, Any]:
    """The exact lights for one object."""
    scale = config.strength
    if config.preset == "key_sun":
        return {
            "preset": "key_sun",
            "world": {"color": [0.7, 0.7, 0.7], "strength": 0.7 * scale},
            "suns": [{"name": "key", "azimuth_deg": -50.0, "elevation_deg": 40.0, "energy": 2.0 * scale}],
            "shadows": True,
        }
    turn, jitter = 0.0, [1.0] * len(_NEUTRAL_SUNS)
    if config.preset == "random":
        rng = random.Random(f"{config.seed}:{object_key}")
        turn = rng.uniform(0.0, 360.0)
        jitter = [rng.uniform(0.6, 1.4) for _ in _NEUTRAL_SUNS]
    suns = [
        {
            "name": name,
            "azimuth_deg": round((azimuth + turn) % 360.0, 6),
            "elevation_deg": elevation,
            "energy": round(energy * factor * scale, 6),
        }
        for (name, azimuth, elevation, energy), factor in zip(_NEUTRAL_SUNS, jitter)
    ]
    return {
        "preset": config.preset,
        "world": {"color": [1.0, 1.0, 1.0], "strength": _NEUTRAL_WORLD * scale},
        "suns": suns,
        "shadows": False,
    }
