"""Stored rates per GPU kind, for planning a cluster build from a machine without that GPU.

Each figure names where it came from. Replace them with your own measurements as they come
(`mvcap plan` on the GPU kind itself measures instead of reading these).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuRates:
    name: str
    # Cycles OptiX at the reference setting (512 x 512 px, 32 samples), views/s on one GPU, by
    # Blender processes sharing it.
    render_views_per_s: dict[int, float]
    render_reference_pixels: int
    render_reference_samples: int
    render_object_overhead_s: float  # import + first-view scene sync, per object and process
    render_startup_s: float  # Blender start with a kept kernel cache
    caption_views_per_s: float  # LLaVA-1.5-7B
    source: str

    def render_rate(self, workers: int, resolution: int, samples: int) -> float:
        """Views/s at these settings: the measured rate for the nearest worker count, scaled by
        pixels x samples (Cycles' cost is close to linear in both)."""
        nearest = min(self.render_views_per_s, key=lambda w: (abs(w - workers), -w))
        scale = (self.render_reference_pixels * self.render_reference_samples) / (
            resolution * resolution * max(samples, 1)
        )
        return self.render_views_per_s[nearest] * scale


GPU_RATES = {
    "h100": GpuRates(
        name="h100",
        render_views_per_s={1: 10.6, 4: 17.0, 8: 22.0},
        render_reference_pixels=512 * 512,
        render_reference_samples=32,
        render_object_overhead_s=0.78,
        render_startup_s=0.5,
        caption_views_per_s=40.0,
        source="render: one H100, Cycles OptiX + OIDN, 512 px, 24 views, real Objaverse GLBs (DESIGN.md); "
        "caption: the low end of issue 14's 19-33 H100-hours for MVCap's 4.6M views (not measured here)",
    ),
}
