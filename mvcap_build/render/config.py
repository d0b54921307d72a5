"""Settings of the render stage, validated from YAML or CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from mvcap_build.render.sources.objaverse.config import ObjaverseSourceConfig
from mvcap_build.render.up_axis import UpAxis
from mvcap_build.render.viewpoints import Distribution


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DemoSourceConfig(_Config):
    """Procedural objects built in Blender: no download, deterministic from the seed."""

    kind: Literal["demo"] = "demo"
    categories: list[str] | None = None  # None = every demo category
    per_category: int = Field(3, ge=1)
    seed: int = 0


class LocalSourceConfig(_Config):
    """A folder of glb/gltf/obj/ply/stl/fbx files and a CSV `file,category`."""

    kind: Literal["local"] = "local"
    folder: Path
    # default: FOLDER/categories.csv if there is one, else every mesh file under FOLDER; a file
    # without a category (empty, `unknown`) is named from its file name (sources/local.py)
    categories_csv: Path | None = None
    name: str = "local"  # the source part of object keys: "<name>/<file>"
    # The files' up axis: auto = by format (glTF, OBJ, PLY Y-up; STL Z-up; FBX as the file says;
    # see render/up_axis.py), or one of Z, Y, X, -Z, -Y, -X for every file. An `up_axis` column
    # in the CSV overrides it per file. Part of the fingerprint.
    up_axis: UpAxis = "auto"


SourceConfig = Annotated[DemoSourceConfig | LocalSourceConfig | ObjaverseSourceConfig, Field(discriminator="kind")]


class ViewsConfig(_Config):
    num_views: int = Field(12, ge=1, le=1000)
    distribution: Distribution = Distribution.hemisphere
    min_elevation_deg: float = Field(0.0, ge=-90, le=90)
    max_elevation_deg: float = Field(85.0, ge=-90, le=90)
    orbit_elevations_deg: list[float] | None = None  # rings for distribution=orbit
    fov_deg: float = Field(40.0, gt=1, lt=170)
    # fit: each object's own bounding sphere (its vertices after normalisation, about the origin)
    # fills the view, times `margin`, so thin and flat objects fill the frame too.
    # fixed: one distance for every object (comparable scale, zero123-style).
    framing: Literal["fit", "fixed"] = "fit"
    margin: float = Field(1.05, ge=1.0)  # fit: the sphere's radius times this fills half the field of view
    distance: float | None = Field(None, gt=0)  # fixed: camera distance; None = the unit cube's sphere fills the view
    seed: int = 0  # for distribution=random


class LightingConfig(_Config):
    """The lights every object is rendered under (see `render/lighting.py`; part of the fingerprint)."""

    # neutral: an even white world light plus key, fill, rim and bottom suns without shadows, so
    #   every side reads alike, from below too, in faithful colours.
    # key_sun: grey ambient and one sun from the upper front-left with shadows (the first look).
    # random: the neutral rig turned and its energies varied per object, seeded.
    preset: Literal["neutral", "key_sun", "random"] = "neutral"
    strength: float = Field(1.0, gt=0)  # scales every light
    seed: int = 0  # for preset=random


class RenderConfig(_Config):
    source: SourceConfig = Field(default_factory=DemoSourceConfig)
    views: ViewsConfig = Field(default_factory=ViewsConfig)
    resolution: int = Field(224, ge=8, le=4096)
    engine: Literal["CYCLES", "BLENDER_EEVEE", "BLENDER_WORKBENCH"] = "CYCLES"
    samples: int = Field(32, ge=1)
    lighting: LightingConfig = Field(default_factory=LightingConfig)
    denoise: bool = True  # OpenImageDenoise (the OptiX denoiser is unreliable in containers)
    device: Literal["auto", "cpu", "cuda", "optix"] = "auto"  # auto: OptiX, then CUDA, then CPU
    workers: int = Field(1, ge=1)  # Blender processes; several can share one GPU
    threads: int | None = Field(None, ge=1)  # CPU threads per Blender process (None: the cores split between workers)
    # Cycles compiles GPU kernels on first use (minutes on a new GPU): a folder kept across runs
    # and shared by the workers of a node (CUDA_CACHE_PATH, OPTIX_CACHE_PATH) makes it once.
    kernel_cache: Path | None = None
    # PNG compression on the host, in parallel with rendering (zlib level), instead of inside
    # Blender's render loop, where it took a third of a GPU view's time.
    png_on_host: bool = True
    png_level: int = Field(4, ge=0, le=9)
    timeout_s: float = Field(600.0, gt=0)  # per object, import included
    recycle_after: int = Field(100, ge=1)  # restart a worker after this many objects (Blender leaks)
    min_coverage: float = Field(0.0005, ge=0, le=1)  # a view with fewer object pixels is "empty"
    python: str | None = None  # interpreter with bpy, if not this one (a separate Blender env)
