"""The preview folder: `index.html`, its data as script files, and the thumbnails.

Browsers refuse fetch() and XHR on file:// URLs but run `<script src>` files, so the data is
JavaScript: `index.js` sets `window.MVCAP_INDEX` (one compact row per object) and each
`chunks/NNN/chunk-NNNNN.js` hands the details of `chunk_size` consecutive objects to
`mvcapChunk(n, objects)`. Object i of the index lives in chunk i // chunk_size, at i % chunk_size.

Each run writes its data into a fresh `data/run-<time>/` folder and only then replaces `index.html`
(atomically) with one that points there; older run folders are removed after. A run killed at any
moment leaves the previous preview whole, and never a half-written file under a name it uses.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from mvcap_build.dataset import atomic_write_text
from mvcap_build.dataset.atomic import remove_stale_staging
from mvcap_build.dataset.claims import try_claim
from mvcap_build.errors import RootError, UserError

ASSETS = ("preview.js", "preview.css")
CHUNKS_PER_FOLDER = 1000
RUN_FOLDER = re.compile(r"run-\d{8}T\d{12}Z")


class PreviewBusy(UserError, RuntimeError):
    """Another preview of the same folder is publishing: one at a time, since each replaces index.html."""


def chunk_relpath(number: int) -> str:
    """Mirrored in preview.js (`chunkPath`)."""
    return f"chunks/{number // CHUNKS_PER_FOLDER:03d}/chunk-{number:05d}.js"


def _js(data: Any) -> str:
    """JSON is valid JavaScript; loaded by `<script src>`, it never passes through an HTML parser."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


class Site:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.run = "data/run-" + dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.data = out / self.run
        try:
            self.data.mkdir(parents=True)
        except OSError as error:
            raise RootError(f"cannot write the preview to {out}: {error.strerror or error}") from None

    def write_chunk(self, number: int, objects: list[dict[str, Any]]) -> None:
        atomic_write_text(self.data / chunk_relpath(number), f"mvcapChunk({number}, {_js(objects)});\n")

    def publish(self, index: dict[str, Any], title: str) -> Path:
        """Write the index and assets, switch index.html to this run, drop older runs."""
        atomic_write_text(self.data / "index.js", f"window.MVCAP_INDEX = {_js(index)};\n")
        for name in ASSETS:
            atomic_write_text(self.data / name, _asset(name))
        page = _asset("index.html").replace("{{DATA}}", self.run).replace("{{TITLE}}", html.escape(title))
        claim = try_claim(self.out / "index.html")
        if claim is None:
            raise PreviewBusy(f"another `mvcap preview` is writing {self.out} now: wait for it to end, then rerun")
        with claim:  # no other live preview here: what a killed one left beside index.html goes
            remove_stale_staging(self.out / "index.html")
            atomic_write_text(self.out / "index.html", page)
            self._remove_older_runs()
        return self.out / "index.html"

    def _remove_older_runs(self) -> None:
        """Only folders named as runs are: `--out` may point at a folder that holds other things."""
        for folder in (self.out / "data").iterdir():
            if folder != self.data and RUN_FOLDER.fullmatch(folder.name) and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)


def _asset(name: str) -> str:
    return resources.files("mvcap_build.preview").joinpath("assets", name).read_text(encoding="utf-8")
