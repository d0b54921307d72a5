"""The stage contract: one dataset root, the records in it, atomic units, fingerprints and
failure ledgers.

Stages share only this package; none imports another stage's internals.
"""

from mvcap_build.dataset.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, commit_dir
from mvcap_build.dataset.fingerprint import Fingerprint
from mvcap_build.dataset.keys import in_shard, key_relpath, make_key, split_key
from mvcap_build.dataset.layout import DatasetRoot
from mvcap_build.dataset.ledger import FailureLedger
from mvcap_build.dataset.manifests import (
    read_caption_manifest,
    read_views_manifest,
    write_caption_manifest,
    write_views_manifest,
)
from mvcap_build.dataset.objects_table import ManifestError, read_objects, write_objects_table
from mvcap_build.dataset.records import (
    CaptionManifest,
    CaptionRow,
    CaptureProducer,
    FailureRecord,
    ObjectRecord,
    RenderProducer,
    ViewRecord,
    ViewsManifest,
)

__all__ = [
    "CaptionManifest",
    "CaptionRow",
    "CaptureProducer",
    "DatasetRoot",
    "FailureLedger",
    "FailureRecord",
    "Fingerprint",
    "ManifestError",
    "ObjectRecord",
    "RenderProducer",
    "ViewRecord",
    "ViewsManifest",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "commit_dir",
    "in_shard",
    "key_relpath",
    "make_key",
    "read_caption_manifest",
    "write_caption_manifest",
    "write_views_manifest",
    "read_objects",
    "read_views_manifest",
    "split_key",
    "write_objects_table",
]
