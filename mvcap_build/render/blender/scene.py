"""Scene setup: engine, device, lights and camera for each object, in a worker that lives long.

The worker resets to factory settings once, at its start. Between objects it only deletes every
data block (objects, meshes, materials, images, ...): a factory reset per object would also reset
the compute device, and re-initialising the GPU for every object costs more than rendering it.
Memory that Blender still leaks is reclaimed by recycling workers (see render/workers.py).
"""

from __future__ import annotations

import math
from typing import Any

import bpy

GPU_KINDS = {"auto": ("OPTIX", "CUDA"), "optix": ("OPTIX",), "cuda": ("CUDA",), "cpu": ()}


class DeviceError(RuntimeError):
    """The requested compute device does not exist: a broken environment, not a bad object."""


def choose_device(requested: str) -> dict[str, Any]:
    """Pick the Cycles compute device once per worker and report what is really in use."""
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for kind in GPU_KINDS[requested]:
        try:
            prefs.compute_device_type = kind
        except TypeError:  # this Blender build has no such backend
            continue
        prefs.get_devices()
        gpus = [d.name for d in prefs.devices if d.type == kind]
        if gpus:
            return {"device": "GPU", "backend": kind, "devices": gpus}
    if requested not in ("auto", "cpu"):
        raise DeviceError(f"device {requested!r} requested but Blender found no {requested.upper()} GPU")
    return {"device": "CPU", "backend": "NONE", "devices": ["CPU"]}


def _apply_device(scene: bpy.types.Scene, device: dict[str, Any]) -> None:
    prefs = bpy.context.preferences.addons["cycles"].preferences
    if device["device"] == "GPU":
        if prefs.compute_device_type != device["backend"] or not any(
            d.use and d.type == device["backend"] for d in prefs.devices
        ):
            prefs.compute_device_type = device["backend"]
            prefs.get_devices()
            for d in prefs.devices:
                d.use = d.type == device["backend"]
        scene.cycles.device = "GPU"
    else:
        scene.cycles.device = "CPU"


# Every kind of data block an import can create; removing them all frees the previous object.
_DATA_KINDS = (
    "objects",
    "meshes",
    "materials",
    "textures",
    "images",
    "cameras",
    "lights",
    "worlds",
    "node_groups",
    "curves",
    "armatures",
    "actions",
    "collections",
    "lattices",
    "grease_pencils",
    "metaballs",
    "fonts",
    "particles",
    "shape_keys",
    "volumes",
    "pointclouds",
    "hair_curves",
)


def clear_scene() -> None:
    """Delete every data block but the scene itself, keeping preferences (the GPU) as they are."""
    doomed = []
    for kind in _DATA_KINDS:
        collection = getattr(bpy.data, kind, None)
        if collection is not None and kind != "shape_keys":
            doomed.extend(collection)
    bpy.data.batch_remove(doomed)
    bpy.data.orphans_purge(do_local_ids=True, do_linked_ids=True, do_recursive=True)


def start_session() -> None:
    """Once per worker: an empty factory scene."""
    bpy.ops.wm.read_factory_settings(use_empty=True)


def reset_scene(settings: dict[str, Any], device: dict[str, Any]) -> bpy.types.Object:
    """Empty the scene, (re)apply every render setting, add lights and a camera; return the camera."""
    clear_scene()
    scene = bpy.context.scene
    render = scene.render
    render.engine = settings["engine"]
    render.resolution_x = render.resolution_y = settings["resolution"]
    render.resolution_percentage = 100
    render.film_transparent = True
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGBA"
    render.image_settings.color_depth = "8"
    render.image_settings.compression = settings.get("png_compression", 15)
    scene.view_settings.view_transform = "Standard"  # true colours; AgX would wash them out
    for flag in [name for name in dir(render) if name.startswith("use_stamp")]:
        setattr(render, flag, False)  # no date/render-time metadata: same scene, same bytes
    if settings.get("threads"):
        render.threads_mode = "FIXED"
        render.threads = settings["threads"]
    if settings["engine"] == "CYCLES":
        scene.cycles.samples = settings["samples"]
        scene.cycles.use_denoising = settings["denoise"]
        scene.cycles.denoiser = "OPENIMAGEDENOISE"
        scene.cycles.seed = 0
        scene.cycles.use_adaptive_sampling = False  # same samples per pixel: reproducible images
        scene.cycles.denoising_use_gpu = device["device"] == "GPU"
        # Keep the synced scene (BVH, shaders, kernels) between the views of one object: only
        # the camera moves, so re-syncing everything per view would dominate GPU time.
        render.use_persistent_data = True
        _apply_device(scene, device)
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    camera.data.sensor_fit = "HORIZONTAL"
    camera.data.clip_start, camera.data.clip_end = 0.01, 100.0
    scene.collection.objects.link(camera)
    scene.camera = camera
    return camera


def add_lights(rig: dict[str, Any]) -> list[str]:
    """Build the light rig the host planned (see `mvcap_build.render.lighting`): a world light and
    suns given by the direction they shine from. Returns the names of the objects added."""
    from mathutils import Vector

    scene = bpy.context.scene
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (*rig["world"]["color"], 1.0)
    background.inputs["Strength"].default_value = rig["world"]["strength"]
    scene.world = world
    names = []
    for spec in rig["suns"]:
        light = bpy.data.lights.new(f"mvcap_{spec['name']}", "SUN")
        light.energy = spec["energy"]
        if hasattr(light, "use_shadow"):
            light.use_shadow = rig["shadows"]
        sun = bpy.data.objects.new(light.name, light)
        az, el = math.radians(spec["azimuth_deg"]), math.radians(spec["elevation_deg"])
        towards_light = Vector((math.cos(el) * math.sin(az), -math.cos(el) * math.cos(az), math.sin(el)))
        sun.rotation_euler = (-towards_light).to_track_quat("-Z", "Y").to_euler()  # a sun shines down its -z
        scene.collection.objects.link(sun)
        names.append(sun.name)
    return names


def place_camera(camera: bpy.types.Object, unit_c2w: list[list[float]], distance: float, fov_deg: float) -> None:
    """Put the camera on its ray from the origin at `distance` (the host sent it at distance 1)."""
    from mathutils import Matrix

    matrix = Matrix(unit_c2w)
    matrix.translation = matrix.translation * distance
    camera.matrix_world = matrix
    camera.data.angle = math.radians(fov_deg)
