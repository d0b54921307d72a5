"""A persistent Blender worker: reads render jobs as JSON lines on stdin, answers on stdout.

Run as `python -m mvcap_build.render.blender.worker` by `mvcap_build.render.workers`. Blender
prints freely to stdout, so the protocol gets a private copy of the original stdout and fd 1 is
pointed at stderr, which the host keeps as this worker's log.

The messages are `mvcap_build.render.protocol`'s: Ready once (or Fatal, without bpy), then one
Rendered or RenderFailed per RenderJob. The worker exits when stdin closes (the host finished, or
was killed).
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from pathlib import Path

from mvcap_build.render.protocol import Fatal, Message, Ready, Rendered, RenderFailed, RenderJob, decode, encode


def _protocol_stream():
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol


def _send(stream, message: Message) -> None:
    stream.write(encode(message))
    stream.flush()


def render_job(job: RenderJob, device: dict) -> Rendered:
    import bpy

    from mvcap_build.render.blender import hygiene, importers, procedural, scene

    started = time.perf_counter()
    settings = job.settings
    camera = scene.reset_scene(settings, device)
    asset = job.asset
    axes: dict[str, str] = {}
    if asset["kind"] == "file":
        axes = importers.import_file(Path(asset["path"]), asset.get("up_axis", "auto"))
    elif asset["kind"] == "procedural":
        procedural.build(asset["builder"], int(asset["seed"]))
    else:
        raise importers.AssetError("unsupported_asset", f"unknown asset kind {asset['kind']!r}")
    for obj in list(bpy.context.scene.objects):  # imported cameras and lights would change the look
        if obj.type in ("CAMERA", "LIGHT") and obj != camera:
            bpy.data.objects.remove(obj, do_unlink=True)
    bpy.context.scene.camera = camera
    pose = hygiene.pose_at_start()
    hidden = hygiene.remove_hidden()
    converted = hygiene.convert_to_meshes()
    missing_textures = hygiene.neutralise_missing_textures()
    hygiene.require_surfaces()
    vertex_colored = importers.show_vertex_colors()
    stats = {
        **hygiene.asset_stats(),
        "hidden_removed": hidden,
        "converted_to_mesh": converted,
        "missing_textures": missing_textures,
        "vertex_color_materials": vertex_colored,
        **pose,
        **axes,
    }
    normalization = importers.normalize_to_unit_cube()
    scene.add_lights(job.lighting)
    framing = frame(job.framing, importers.bounding_radius())
    imported = time.perf_counter()
    out_dir = Path(job.out_dir)
    for view in job.views:
        scene.place_camera(camera, view["blender_c2w"], framing["distance"], view["fov_deg"])
        bpy.context.scene.render.filepath = str(out_dir / view["file"])
        bpy.ops.render.render(write_still=True)
    return Rendered(
        key=job.key,
        renderer={
            "engine": settings["engine"],
            "samples": settings["samples"] if settings["engine"] == "CYCLES" else None,
            "denoise": settings["denoise"] if settings["engine"] == "CYCLES" else None,
            "resolution": settings["resolution"],
            **device,
            "blender": bpy.app.version_string,
        },
        framing=framing,
        stats={**stats, **normalization},
        info={
            "import_s": round(imported - started, 3),
            "render_s": round(time.perf_counter() - imported, 3),
        },
    )


def frame(spec: dict, radius: float) -> dict:
    """The camera distance: the object's bounding sphere fills the view (fit), or a given one."""
    if spec["mode"] == "fixed":
        return {"mode": "fixed", "distance": spec["distance"], "radius": round(radius, 6)}
    half_fov = math.radians(spec["fov_deg"]) / 2.0
    return {
        "mode": "fit",
        "margin": spec["margin"],
        "radius": round(radius, 6),
        "distance": spec["margin"] * radius / math.sin(half_fov),
    }


def main() -> int:
    protocol = _protocol_stream()
    try:
        import bpy
    except ImportError as error:
        _send(protocol, Fatal(f"cannot import bpy ({error}); pip install 'mvcap-build[render]' (needs Python 3.11)"))
        return 3
    from mvcap_build.render.blender import importers, scene

    scene.start_session()
    _send(protocol, Ready(bpy.app.version_string, os.getpid()))
    device: dict | None = None
    for line in sys.stdin:
        if not line.strip():
            continue
        job = decode(line)
        if not isinstance(job, RenderJob):
            print(f"[mvcap worker] ignored a {job.type} message: only jobs come in", file=sys.stderr, flush=True)
            continue
        reply: Rendered | RenderFailed
        try:
            if device is None:
                device = scene.choose_device(job.settings["device"])
                print(f"[mvcap worker] compute device: {device}", file=sys.stderr, flush=True)
                kernel_cache = {k: os.environ[k] for k in ("CUDA_CACHE_PATH", "OPTIX_CACHE_PATH") if k in os.environ}
                print(
                    f"[mvcap worker] threads: {job.settings.get('threads')}, kernel cache: {kernel_cache}",
                    file=sys.stderr,
                    flush=True,
                )
            reply = render_job(job, device)
        except scene.DeviceError as error:
            reply = RenderFailed(job.key, "device_unavailable", str(error), fatal=True)
        except importers.AssetError as error:
            reply = RenderFailed(job.key, error.reason, str(error))
        except Exception:  # one bad object must not end the worker
            reply = RenderFailed(job.key, "render_error", traceback.format_exc())
        if isinstance(reply, Rendered):
            print(f"[mvcap worker] {job.key}: {reply.info}", file=sys.stderr, flush=True)
        else:
            print(f"[mvcap worker] {job.key}: {reply.reason}: {reply.detail}", file=sys.stderr, flush=True)
        try:
            _send(protocol, reply)
        except BrokenPipeError:  # the host is gone: nothing was committed, just stop
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
