"""Joining views and caption manifests into export rows, with deterministic integer ids."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from mvcap_build.dataset import DatasetRoot, ViewsManifest, read_caption_manifest, read_objects, read_views_manifest
from mvcap_build.dataset.export_schema import ExportRow
from mvcap_build.errors import ConfigError, ManifestError
from mvcap_build.export.shards import split_of, stratified_splits

# What to do about a view file that is missing or broken under a committed manifest.
REDO_OBJECT = (
    "delete that object's views folder and rerun render or extract (it is redone), then caption, or restore the file"
)


def check_view_files(root: DatasetRoot, rows: list[ExportRow], show: int = 5) -> None:
    """Every row's image is a non-empty file: a missing one stops the export before it writes
    anything (dropping the object would renumber every obj_id after it)."""
    missing = [row.path for row in rows if not _non_empty(root.path / row.path)]
    if missing:
        listed = "\n".join(f"  {path}" for path in missing[:show]) + (
            f"\n  ... and {len(missing) - show} more" if len(missing) > show else ""
        )
        raise ManifestError(
            f"{len(missing)} view file(s) named by committed manifests are missing or empty:\n{listed}\n"
            f"Nothing was exported. For each object, {REDO_OBJECT}."
        )


def _non_empty(path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


@dataclass
class ExportRows:
    rows: list[ExportRow] = field(default_factory=list)
    objects: int = 0
    categories: Counter = field(default_factory=Counter)  # category -> objects
    incomplete: list[str] = field(default_factory=list)  # keys with views but without complete captions
    stale_captions: list[str] = field(default_factory=list)  # keys whose captions describe older views
    caption_producers: Counter = field(default_factory=Counter)  # (backend, model, revision, prompt_name) -> objects
    view_producers: Counter = field(default_factory=Counter)  # description -> objects
    # What made the views: "render", or the capture source's kind ("mvimgnet", "im3d", "nerf") -> objects
    view_kinds: Counter = field(default_factory=Counter)
    licences: Counter = field(default_factory=Counter)  # licence code ("none recorded" if absent) -> objects
    attributions: list[dict] = field(default_factory=list)  # one per object whose source records an author or licence
    sources: Counter = field(default_factory=Counter)  # source name -> objects
    caption_tries: Counter = field(default_factory=Counter)  # tries a view's caption took to pass the gates -> views


ATTRIBUTION_FIELDS = ("key", "name", "author", "author_url", "source_url", "license")


def needs_attribution(licence: str | None) -> bool:
    """Creative Commons licences with BY (by, by-sa, by-nc, ...) require crediting the author."""
    return bool(licence) and any(part == "by" for part in licence.lower().replace("cc-", "").split("-"))


def describe_producer(manifest: ViewsManifest) -> str:
    p = manifest.producer
    if p.kind == "render":
        quality = f"{p.samples} spp, " if p.samples else ""
        return f"Blender {p.blender} {p.engine} ({quality}{p.resolution} px, {p.device} {p.backend})"
    return f"capture from {p.source}" + (f" ({p.reconstruction} poses)" if p.reconstruction else "")


def view_kind(manifest: ViewsManifest) -> str:
    p = manifest.producer
    return "render" if p.kind == "render" else p.source


def collect_rows(
    root: DatasetRoot, img_id_stride: int, splits: dict[str, float] | None = None, stratify: bool = False
) -> ExportRows:
    """Every captioned view, objects sorted by key: obj_id counts up from 0 in that order.
    `stratify`: splits drawn per category over the exported objects (`shards.stratified_splits`)."""
    objects = read_objects(root)
    views = {m.key: m for m in map(read_views_manifest, root.view_manifests())}
    captions = {m.key: m for m in map(read_caption_manifest, root.caption_manifests())}
    result = ExportRows()
    for key in sorted(views):
        manifest, caption = views[key], captions.get(key)
        by_view = {row.view_index: row for row in caption.rows} if caption else {}
        if not by_view or any(v.view_index not in by_view for v in manifest.views):
            result.incomplete.append(key)
            continue
        described = caption.fingerprint.fields.get("views_digest") if caption.fingerprint else None
        if manifest.fingerprint is None or described != manifest.fingerprint.digest:
            result.stale_captions.append(key)
            continue
        if key not in objects:
            raise ConfigError(f"{key} has views and captions but no row in {root.path / 'objects'}")
        if len(manifest.views) > img_id_stride:
            raise ConfigError(f"{key} has {len(manifest.views)} views: raise export.img_id_stride above it")
        obj_id, category = result.objects, objects[key].category
        result.objects += 1
        result.categories[category] += 1
        result.sources[objects[key].source] += 1
        attrs = objects[key].attrs
        result.licences[attrs.get("license") or "none recorded"] += 1
        if attrs.get("license") or attrs.get("author"):
            result.attributions.append(
                {"key": key, **{f: attrs.get(f) or "" for f in ATTRIBUTION_FIELDS if f != "key"}}
            )
        result.view_producers[describe_producer(manifest)] += 1
        result.view_kinds[view_kind(manifest)] += 1
        first = caption.rows[0]
        revision = caption.fingerprint.fields.get("revision") or ""
        result.caption_producers[(first.backend, first.model, revision, first.prompt_name)] += 1
        folder = root.view_dir(key)
        for view in manifest.views:
            row = by_view[view.view_index]
            result.caption_tries[row.tries] += 1
            result.rows.append(
                ExportRow(
                    path=root.relative(folder / view.file),
                    caption=row.caption,
                    obj_id=obj_id,
                    img_id=obj_id * img_id_stride + view.view_index,
                    key=key,
                    split=split_of(key, splits or {"train": 1.0}),
                    category=category,
                    source=objects[key].source,
                    view_index=view.view_index,
                    azimuth_deg=view.azimuth_deg,
                    elevation_deg=view.elevation_deg,
                    distance=view.distance,
                    fov_deg=view.fov_deg,
                    c2w=view.c2w,
                    caption_backend=row.backend,
                    caption_model=row.model,
                )
            )
    if stratify:
        split_by_key = stratified_splits({r.key: r.category for r in result.rows}, splits or {"train": 1.0})
        result.rows = [dataclasses.replace(r, split=split_by_key[r.key]) for r in result.rows]
    return result
