"""Why one object's file could not be had. A per-object failure for the ledger, not a fatal error."""

from __future__ import annotations

from mvcap_build.render.sources.fetch import AssetUnavailable

NOT_FOUND = "not_found"  # HTTP 404/410: the Hub has no such file
DOWNLOAD_FAILED = "download_failed"  # network errors, timeouts, 5xx/429 after every retry; other 4xx
CORRUPT_DOWNLOAD = "corrupt_download"  # bytes arrived but are not the file (short body, bad GLB header)

__all__ = ["CORRUPT_DOWNLOAD", "DOWNLOAD_FAILED", "NOT_FOUND", "AssetUnavailable"]
