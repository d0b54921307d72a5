"""The stage contract: one dataset root, the records in it, atomic units and failure ledgers.

Stages share only this package; none imports another stage's internals.
"""

from mvcap_build.dataset.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, commit_dir
from mvcap_build.dataset.keys import in_shard, key_relpath, make_key, split_key
from mvcap_build.dataset.layout import DatasetRoot
from mvcap_build.dataset.ledger import FailureLedger
from mvcap_build.dataset.manifests import read_caption_manifest, read_render_manifest
from mvcap_build.dataset.objects_table import ManifestError, read_objects, write_objects_table
from mvcap_build.dataset.records import (
    CaptionManifest,
    CaptionRow,
    FailureRecord,
    ObjectRecord,
    RenderManifest,
    ViewRecord,
)

__all__ = [
    "CaptionManifest",
    "CaptionRow",
    "DatasetRoot",
    "FailureLedger",
    "FailureRecord",
    "ManifestError",
    "ObjectRecord",
    "RenderManifest",
    "ViewRecord",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "commit_dir",
    "in_shard",
    "key_relpath",
    "make_key",
    "read_caption_manifest",
    "read_objects",
    "read_render_manifest",
    "split_key",
    "write_objects_table",
]
