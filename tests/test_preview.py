"""`mvcap preview`: the gallery opens from disk in a real browser (Debian's chromium, driven by
playwright) and shows every object with its views, captions, tries and failures; filters, paging
and the address hash work; dataset text stays text; a rerun reuses the thumbnails."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mvcap_build.cli import app
from mvcap_build.dataset import (
    DatasetRoot,
    FailureLedger,
    ObjectRecord,
    atomic_write_bytes,
    atomic_write_json,
    read_caption_manifest,
    read_objects,
    read_views_manifest,
    write_objects_table,
)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # git-ignored: screenshots for a person to look at
LAMP = "demo/lamp-000"  # render failed: no views
LAMP_CATEGORY = 'lamp <b>&amp;</b> "shade"'
MUG = "demo/mug-000"  # caption failed: views, no captions
CAR = "demo/car-000"  # a caption with markup in it
CHAIR = "demo/chair-000"  # a caption that took three tries
HOSTILE = '<script>alert(1)</script> & <img src=x onerror="window.__xss=1"> A car.'


def run_preview(root: Path, *args: str):
    result = CliRunner().invoke(app, ["preview", str(root), "--quiet", *args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def gallery_root(captioned_root, tmp_path_factory) -> Path:
    """The captioned root plus the cases the filters must find."""
    root = tmp_path_factory.mktemp("preview") / "root"
    shutil.copytree(captioned_root, root)
    dataset = DatasetRoot(root)
    lamp = ObjectRecord(
        key=LAMP,
        source="demo",
        source_id="lamp-000",
        category=LAMP_CATEGORY,
        asset={"kind": "procedural", "builder": "lamp"},
    )
    write_objects_table(dataset, "demo", [*read_objects(dataset).values(), lamp])
    FailureLedger(dataset, "render").record(
        LAMP, "timeout", "Blender gave no answer within 120 s; log: logs/render/worker-0.log <end>"
    )
    dataset.caption_manifest(MUG).unlink()
    FailureLedger(dataset, "caption").record(MUG, "category_missing", "views [1, 3] of 4: 'A cup <i>on</i> a table.'")
    _edit_caption(dataset, CAR, 0, caption=HOSTILE)
    _edit_caption(dataset, CHAIR, 2, tries=3)
    return root


def _edit_caption(dataset: DatasetRoot, key: str, view: int, **changes) -> None:
    path = dataset.caption_manifest(key)
    manifest = read_caption_manifest(path)
    rows = [row.model_copy(update=changes) if row.view_index == view else row for row in manifest.rows]
    atomic_write_json(path, manifest.model_copy(update={"rows": rows}).model_dump())


def expected(root: Path) -> dict[str, dict]:
    """What the page must show, read from the root with the dataset module."""
    dataset = DatasetRoot(root)
    objects = {}
    for key, record in read_objects(dataset).items():
        views_path, captions_path = dataset.view_manifest(key), dataset.caption_manifest(key)
        views = read_views_manifest(views_path).views if views_path.is_file() else []
        rows = (
            {row.view_index: row for row in read_caption_manifest(captions_path).rows}
            if captions_path.is_file()
            else {}
        )
        failures = [
            (e.stage, e.reason, e.detail)
            for stage in ("render", "caption")
            if (e := FailureLedger(dataset, stage).get(key))
        ]
        objects[key] = {"category": record.category, "views": views, "captions": rows, "failures": failures}
    return objects


# the browser ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed: the preview test needs a real browser (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        # Root in a container needs --no-sandbox; file:// pages load the data as <script src>.
        chromium = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--allow-file-access-from-files"]
        )
        yield chromium
        chromium.close()


# Chromium keeps no resource timings for file:// loads: count the chunks the page receives instead.
RECORD_CHUNKS = """
window.chunksLoaded = [];
let receive;
Object.defineProperty(window, "mvcapChunk", {
    get: () => (number, objects) => { window.chunksLoaded.push(number); receive(number, objects); },
    set: (fn) => { receive = fn; },
});
"""


@pytest.fixture
def page(browser):
    """A page that records script errors, failed loads and dialogs (an alert would be injected script)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(RECORD_CHUNKS)
    tab = context.new_page()
    tab.problems = []
    tab.on("pageerror", lambda error: tab.problems.append(f"page error: {error}"))
    tab.on("console", lambda message: message.type == "error" and tab.problems.append(f"console: {message.text}"))
    tab.on("dialog", lambda dialog: (tab.problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    yield tab
    context.close()


def open_page(tab, url: str) -> None:
    tab.goto(url)
    _settle(tab)


def act(tab, action) -> None:
    """Do something that re-renders the list, and wait until the new list and its images are in."""
    before = tab.evaluate("document.body.dataset.renders || '0'")
    action()
    tab.wait_for_function(
        "before => document.body.dataset.state === 'ready' && document.body.dataset.renders !== before", arg=before
    )
    _settle(tab)


def _settle(tab) -> None:
    tab.wait_for_function("document.body.dataset.state === 'ready'")
    tab.wait_for_function("[...document.images].every(image => image.complete)")


SHOWN = """() => [...document.querySelectorAll('#objects > li.object')].map(card => ({
    key: card.dataset.key,
    keyText: card.querySelector('.key').textContent,
    category: card.querySelector('.badge.category').textContent,
    empty: card.querySelector('.empty') !== null,
    views: [...card.querySelectorAll('figure.view')].map(tile => {
        const image = tile.querySelector('.frame img');
        return {
            index: Number(tile.dataset.view),
            azimuth: Number(tile.dataset.azimuth),
            elevation: Number(tile.dataset.elevation),
            label: tile.querySelector('.angles').textContent,
            caption: tile.querySelector('.caption').textContent,
            missing: tile.querySelector('.caption').classList.contains('missing'),
            tries: tile.querySelector('.tries') ? tile.querySelector('.tries').textContent : null,
            image: image ? {width: image.naturalWidth, src: image.getAttribute('src')} : null,
        };
    }),
    failures: [...card.querySelectorAll('.failure')].map(item => [
        item.dataset.stage, item.querySelector('.reason').textContent, item.querySelector('.detail').textContent]),
}))"""


def shown(tab) -> list[dict]:
    return tab.evaluate(SHOWN)


def all_pages(tab) -> list[list[dict]]:
    pages = [shown(tab)]
    while tab.locator("#pager-top a.next").count():
        act(tab, lambda: tab.locator("#pager-top a.next").click())
        pages.append(shown(tab))
    return pages


def check_card(card: dict, want: dict) -> None:
    key = card["key"]
    assert card["keyText"] == key and card["category"] == want["category"], card
    assert card["failures"] == [list(f) for f in want["failures"]], key
    assert len(card["views"]) == len(want["views"]), f"{key}: {len(card['views'])} tiles for {len(want['views'])} views"
    assert card["empty"] == (not want["views"]), key
    for tile, view in zip(card["views"], want["views"]):
        assert tile["index"] == view.view_index
        assert tile["azimuth"] == pytest.approx(view.azimuth_deg) and tile["elevation"] == pytest.approx(
            view.elevation_deg
        )
        az, el = map(float, re.fullmatch(r"az (-?[\d.]+)° · el (-?[\d.]+)°", tile["label"]).groups())
        assert az == pytest.approx(view.azimuth_deg, abs=0.051) and el == pytest.approx(
            view.elevation_deg, abs=0.051
        ), tile["label"]
        assert tile["image"] is not None and tile["image"]["width"] > 0, (
            f"{key} view {view.view_index}: thumbnail did not load"
        )
        row = want["captions"].get(view.view_index)
        if row is None:
            assert tile["missing"] and tile["tries"] is None, f"{key} view {view.view_index} shows a caption it has not"
        else:
            assert tile["caption"] == row.caption
            assert tile["tries"] == ("passed 1st try" if row.tries == 1 else f"{row.tries} tries")


# the tests ------------------------------------------------------------------------------------
def test_gallery_shows_every_object_and_filters_and_pages(gallery_root, page):
    result = run_preview(gallery_root, "--page-size", "2")
    assert "4 objects (3 with views, 2 captioned, 2 with failures) on 2 pages" in result.output
    want = expected(gallery_root)
    url = (gallery_root / "preview" / "index.html").as_uri()
    open_page(page, url)

    assert page.evaluate("window.chunksLoaded") == [0], "page 1 loads only its own chunk"
    assert page.locator("#showing").text_content() == "showing 1–2 of 4 objects · page 1 of 2"
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "preview.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 0

    pages = all_pages(page)
    assert [len(p) for p in pages] == [2, 2]
    assert page.locator("#showing").text_content() == "showing 3–4 of 4 objects · page 2 of 2"
    cards = [card for p in pages for card in p]
    assert sorted(card["key"] for card in cards) == sorted(want), "every object once, across the pages"
    for card in cards:
        check_card(card, want[card["key"]])
    by_key = {card["key"]: card for card in cards}
    assert by_key[CAR]["views"][0]["caption"] == HOSTILE, "markup in a caption is shown as text"
    assert by_key[CHAIR]["views"][2]["tries"] == "3 tries"
    assert by_key[LAMP]["category"] == LAMP_CATEGORY
    assert page.evaluate("window.__xss") is None and page.locator("#objects script, #objects img[src='x']").count() == 0

    # the hash keeps the page: a reload, or the address alone, lands on page 2
    assert "page=2" in page.evaluate("location.hash")
    page.reload()
    _settle(page)
    assert [c["key"] for c in shown(page)] == [c["key"] for c in pages[1]]

    # category filter, including a category with markup in its name
    act(page, lambda: page.select_option("#category", LAMP_CATEGORY))
    assert [c["key"] for c in shown(page)] == [LAMP]
    act(page, lambda: page.select_option("#category", "mug"))
    assert [c["key"] for c in shown(page)] == [MUG]
    assert "category=mug" in page.evaluate("location.hash")
    act(page, lambda: page.select_option("#category", ""))

    # failure filters: exactly the failed objects, with their reasons
    act(page, lambda: page.select_option("#status", "failed"))
    failed = {c["key"]: c["failures"] for c in shown(page)}
    assert failed == {key: [list(f) for f in w["failures"]] for key, w in want.items() if w["failures"]}
    assert set(failed) == {LAMP, MUG}
    page.screenshot(path=str(ARTIFACTS / "preview-failures.png"), full_page=True)
    act(page, lambda: page.select_option("#status", "failed:render"))
    assert [c["key"] for c in shown(page)] == [LAMP]
    act(page, lambda: page.select_option("#status", "failed:caption"))
    assert [c["key"] for c in shown(page)] == [MUG]
    act(page, lambda: page.select_option("#status", "ok"))
    assert sorted(c["key"] for p in all_pages(page) for c in p) == sorted({CAR, CHAIR})
    act(page, lambda: page.select_option("#status", "retried"))
    assert [c["key"] for c in shown(page)] == [CHAIR]

    # filters and page come back from the address alone, in a fresh tab
    open_page(page, url + "#page=1&status=failed&category=mug")
    assert [c["key"] for c in shown(page)] == [MUG]
    assert page.locator("#status").input_value() == "failed" and page.locator("#category").input_value() == "mug"
    assert page.problems == []


def test_rerun_reuses_thumbnails_and_remakes_changed_ones(captioned_root, copy_of):
    root = copy_of(captioned_root)
    assert "thumbnails: 3 made, 0 reused" in run_preview(root).output
    thumbs = root / "preview" / "thumbs"
    before = {path: path.stat().st_mtime_ns for path in thumbs.rglob("*") if path.is_file()}
    assert len(before) == 3, before

    assert "thumbnails: 0 made, 3 reused" in run_preview(root).output
    assert {path: path.stat().st_mtime_ns for path in thumbs.rglob("*") if path.is_file()} == before
    assert len(list((root / "preview" / "data").iterdir())) == 1, "older runs' data is removed"

    # new views of one object (a rewritten manifest): its sprite is remade, the old one removed
    manifest = DatasetRoot(root).view_manifest(MUG)
    atomic_write_bytes(manifest, manifest.read_bytes())
    assert "thumbnails: 1 made, 2 reused" in run_preview(root).output
    after = {path for path in thumbs.rglob("*") if path.is_file()}
    assert len(after) == 3 and len(after - set(before)) == 1
    assert not [p for p in (root / "preview").rglob(".tmp-*")]


def test_interrupted_run_keeps_the_previous_preview(captioned_root, copy_of, monkeypatch):
    from mvcap_build.preview.site import Site

    root = copy_of(captioned_root)
    run_preview(root, "--page-size", "1")
    page = (root / "preview" / "index.html").read_text()
    data = root / "preview" / re.search(r'src="(data/[^"]+)/index\.js"', page).group(1)

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Site, "publish", killed)
    result = CliRunner().invoke(app, ["preview", str(root), "--quiet", "--page-size", "1"])
    assert result.exit_code == 130, result.output
    assert (root / "preview" / "index.html").read_text() == page, "index.html still points at the last complete run"
    assert sorted(p.name for p in (data / "chunks" / "000").iterdir()) == [f"chunk-{n:05d}.js" for n in range(3)]
    monkeypatch.undo()
    run_preview(root)
    assert len(list((root / "preview" / "data").iterdir())) == 1, "the interrupted run's data is cleaned up"


def test_pool_gives_what_one_process_gives(captioned_root, tmp_path):
    from functools import partial

    from mvcap_build.parallel import ordered_map
    from mvcap_build.preview.collect import CollectSettings, collect, failure_stages, iter_objects

    dataset = DatasetRoot(captioned_root)
    objects = [(o.key, o.category) for o in iter_objects(dataset)]
    work = partial(collect, CollectSettings(dataset.path, tmp_path / "out", 64, tuple(failure_stages(dataset))))
    inline = [found.details for found in ordered_map(work, objects, workers=1)]
    pooled = [found.details for found in ordered_map(work, objects, workers=2, batch=1)]
    assert pooled == inline and [d["key"] for d in pooled] == [key for key, _ in objects]


def test_missing_root_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["preview", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.output.splitlines()[0] == f"error: no dataset root at {tmp_path / 'nope'}"


def test_unreadable_files_show_as_preview_failures(captioned_root, copy_of):
    import json

    root = copy_of(captioned_root)
    dataset = DatasetRoot(root)
    (dataset.view_dir(CAR) / "001.png").unlink()
    dataset.caption_manifest(CHAIR).write_text("{not json")
    assert "3 objects (3 with views, 2 captioned, 2 with failures)" in run_preview(root).output
    [chunk] = (root / "preview" / "data").glob("run-*/chunks/000/chunk-00000.js")
    objects = {
        o["key"]: o for o in json.loads(re.fullmatch(r"mvcapChunk\(0, (.*)\);\n", chunk.read_text(), re.S).group(1))
    }
    assert [(f["stage"], f["reason"]) for f in objects[CAR]["failures"]] == [("preview", "thumbnail_failed")]
    assert "001.png" in objects[CAR]["failures"][0]["detail"] and len(objects[CAR]["views"]) == 4
    assert [(f["stage"], f["reason"]) for f in objects[CHAIR]["failures"]] == [("preview", "unreadable_captions")]
    assert objects[MUG]["failures"] == [] and objects[MUG]["sprite"]


def test_a_rerun_removes_what_a_killed_publish_left_and_one_preview_runs_at_a_time(captioned_root, copy_of):
    """The fault campaign's find: a kill during index.html's atomic write left `.tmp-index.html.*`."""
    from mvcap_build.dataset.claims import try_claim

    root = copy_of(captioned_root)
    assert run_preview(root).exit_code == 0
    leftover = root / "preview" / ".tmp-index.html.k1ll3d_x"  # what mkstemp names a killed write
    leftover.write_text("<html>half")
    assert run_preview(root).exit_code == 0
    assert not leftover.exists() and not [p for p in (root / "preview").rglob(".tmp-*")]
    with try_claim(root / "preview" / "index.html"):  # what a publishing preview holds
        busy = CliRunner().invoke(app, ["preview", str(root)])
    assert busy.exit_code == 2 and "another `mvcap preview` is writing" in busy.output
    assert (root / "preview" / "index.html").read_text().startswith("<!")
