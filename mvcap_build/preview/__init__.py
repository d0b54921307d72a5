"""`mvcap preview`: a static HTML gallery of a dataset root that opens from disk.

Per object: its views as thumbnails with azimuth/elevation, its category, every caption with
its tries (the gates' verdict), and every failure with its reason. The page reads its data from
`<script src>` files, because browsers refuse fetch() on file:// URLs; it loads only the chunks
of the objects it shows, so a root of 100K objects stays usable. Building it streams the objects
and holds only a compact index, so memory stays flat in the size of the root.

- `collect`: what the root says about one object (views, captions, failures).
- `thumbs`: one sprite image per object, named after what it shows, so reruns reuse it.
- `site`: the output folder (page, data chunks, index), replaced atomically.
- `pool`: an ordered, bounded process pool.
- `build`: the loop that ties them together.
"""

from mvcap_build.preview.build import PreviewSettings, PreviewSummary, build_preview

__all__ = ["PreviewSettings", "PreviewSummary", "build_preview"]
