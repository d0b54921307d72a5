"""Joining render and caption manifests into export rows, with deterministic integer ids."""

from __future__ import annotations

from dataclasses import dataclass, field

from mvcap_build.dataset import DatasetRoot, read_caption_manifest, read_objects, read_render_manifest


@dataclass
class ExportRows:
    rows: list[dict]
    objects: int
    categories: dict[str, int]  # category -> objects
    incomplete: list[str] = field(default_factory=list)  # rendered keys without complete captions
    producers: set[tuple[str, str, str]] = field(default_factory=set)  # (backend, model, prompt_name)
    renderers: set[str] = field(default_factory=set)


def collect_rows(root: DatasetRoot, img_id_stride: int) -> ExportRows:
    """Every captioned view, objects sorted by key: obj_id counts up from 0 in that order."""
    objects = read_objects(root)
    rendered = {m.key: m for m in map(read_render_manifest, root.view_manifests())}
    captions = {}
    for path in root.caption_manifests():
        manifest = read_caption_manifest(path)
        captions[manifest.key] = {row.view_index: row for row in manifest.rows}
    result = ExportRows(rows=[], objects=0, categories={})
    for key in sorted(rendered):
        render = rendered[key]
        by_view = captions.get(key, {})
        if not by_view or any(v.view_index not in by_view for v in render.views):
            result.incomplete.append(key)
            continue
        if len(render.views) > img_id_stride:
            raise ValueError(f"{key} has {len(render.views)} views: raise export.img_id_stride above it")
        obj_id = result.objects
        result.objects += 1
        obj = objects.get(key)
        category = obj.category if obj else render.category
        result.categories[category] = result.categories.get(category, 0) + 1
        result.renderers.add(f"{render.renderer.get('engine')} on {render.renderer.get('device')}")
        folder = root.view_dir(key)
        for view in render.views:
            row = by_view[view.view_index]
            result.producers.add((row.backend, row.model, row.prompt_name))
            result.rows.append(
                {
                    "path": root.relative(folder / view.file),
                    "caption": row.caption,
                    "obj_id": obj_id,
                    "img_id": obj_id * img_id_stride + view.view_index,
                    "key": key,
                    "category": category,
                    "source": key.split("/", 1)[0],
                    "view_index": view.view_index,
                    "azimuth_deg": view.azimuth_deg,
                    "elevation_deg": view.elevation_deg,
                    "distance": view.distance,
                    "fov_deg": view.fov_deg,
                    "c2w": view.c2w,
                    "caption_backend": row.backend,
                    "caption_model": row.model,
                }
            )
    return result
