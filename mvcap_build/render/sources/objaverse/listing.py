"""`list_objects` for Objaverse 1.0: the selection, resolved to ObjectRecords with categories and
attribution."""

from __future__ import annotations

import logging

from mvcap_build.dataset import ObjectRecord, make_key
from mvcap_build.errors import SourceError
from mvcap_build.render.sources.objaverse.annotations import (
    attribution,
    load_lvis,
    load_metadata,
    load_object_paths,
    lvis_category_of,
    read_category_map,
    readable_category,
)
from mvcap_build.render.sources.objaverse.download import hub_files
from mvcap_build.render.sources.objaverse.selection import Pick, sample_per_category, select

log = logging.getLogger(__name__)


def _first(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def list_objects(config) -> list[ObjectRecord]:
    """The objects a config selects, sorted by key.

    Objects whose licence is not in `licenses` are dropped (logged with a count); the licence
    filter runs before the per-category draw, so each category still gets N where it has them.
    """
    files = hub_files(config)
    try:
        object_paths = load_object_paths(files)
        lvis = load_lvis(files)
        picks = select(config, lvis)
        unknown = [pick.uid for pick in picks if pick.uid not in object_paths]
        if unknown:
            raise SourceError(
                f"{len(unknown)} uid(s) are not in Objaverse 1.0 (object-paths.json.gz): {_first(unknown)}"
            )

        owner = lvis_category_of(lvis)
        names = read_category_map(config.category_map, lvis) if config.category_map else {}
        lvis_of = {pick.uid: pick.lvis or owner.get(pick.uid) for pick in picks}

        def category_of(pick: Pick) -> str | None:
            if pick.category:
                return pick.category
            name = lvis_of[pick.uid]
            return None if name is None else names.get(name) or readable_category(name)

        uncategorised = [pick.uid for pick in picks if category_of(pick) is None]
        if uncategorised:
            raise SourceError(
                f"{len(uncategorised)} uid(s) have no LVIS category and none was given: {_first(uncategorised)}; "
                "select them with a csv (columns uid,category) to name their category"
            )

        metadata = {}
        if config.licenses is not None:
            metadata = load_metadata(files, object_paths, [pick.uid for pick in picks])
            picks = _keep_licensed(picks, metadata, config.licenses)
        if config.per_category is not None:
            group = (lambda pick: lvis_of[pick.uid]) if config.lvis_categories is not None else category_of
            picks = sample_per_category(picks, config.per_category, config.seed, group)
        missing = [pick.uid for pick in picks if pick.uid not in metadata]
        if missing:
            metadata |= load_metadata(files, object_paths, missing)
    finally:
        files.close()

    return sorted(
        (
            ObjectRecord(
                key=make_key(config.name, pick.uid),
                source=config.name,
                source_id=pick.uid,
                category=category_of(pick),
                asset={"kind": "objaverse", "uid": pick.uid, "path": object_paths[pick.uid]},
                attrs=attribution(pick.uid, metadata.get(pick.uid), lvis_of[pick.uid]),
            )
            for pick in picks
        ),
        key=lambda record: record.key,
    )


def _keep_licensed(picks: list[Pick], metadata: dict, licenses: list[str]) -> list[Pick]:
    def code(uid: str) -> str | None:
        return attribution(uid, metadata.get(uid), None)["license"]

    kept = [pick for pick in picks if code(pick.uid) in licenses]
    seen = sorted({str(code(pick.uid)) for pick in picks})
    if len(kept) < len(picks):
        dropped = len(picks) - len(kept)
        log.info("objaverse: dropped %d of %d objects whose licence is not in %s", dropped, len(picks), licenses)
    if not kept:
        raise SourceError(f"no selected object has a licence in {licenses}; their licences: {seen}")
    return kept
