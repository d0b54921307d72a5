"""The `objaverse` source against a real local HTTP server standing in for the Hub: selection,
categories, licences, and downloads that survive 5xx, cut bodies, stalls and SIGKILL."""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import REPO
from fake_objaverse import fake_uid
from pydantic import ValidationError

from mvcap_build.errors import ManifestError, SourceError
from mvcap_build.render.sources.objaverse import AssetUnavailable, ObjaverseSourceConfig, list_objects, make_fetcher
from mvcap_build.render.sources.objaverse.download import TMP_MARK, create_locked_temp, remove_stale_temps
from mvcap_build.render.sources.objaverse.selection import Pick, sample_per_category

TOKEN = "hf_TopSecretTokenForTests123"


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def config(cache, **fields) -> ObjaverseSourceConfig:
    settings = {"cache_dir": cache, "timeout_s": 2.0, "retries": 2, "backoff_s": 0.01} | fields
    return ObjaverseSourceConfig(**settings)


def leftovers(folder):
    return sorted(path.name for path in folder.glob(f"*{TMP_MARK}*")) if folder.is_dir() else []


# --- configuration -------------------------------------------------------------------------


def test_config_needs_exactly_one_selection(cache):
    with pytest.raises(ValidationError, match="exactly one of uids, uids_file, csv, lvis_categories"):
        ObjaverseSourceConfig()
    with pytest.raises(ValidationError, match=r"got uids, lvis_categories"):
        ObjaverseSourceConfig(uids=["a"], lvis_categories="all")
    with pytest.raises(ValidationError, match="per_category needs categories"):
        ObjaverseSourceConfig(uids=["a"], per_category=2)
    with pytest.raises(ValidationError, match="extra"):
        ObjaverseSourceConfig(uids=["a"], bogus=1)
    assert ObjaverseSourceConfig(lvis_categories="all").lvis_categories == "all"
    assert ObjaverseSourceConfig(uids=["a"], licenses=[" BY "]).licenses == ["by"]


# --- selection and categories ----------------------------------------------------------------


def test_select_by_uids_gives_lvis_category_asset_and_attribution(hub, data, cache):
    records = list_objects(config(cache, uids=[data.uids["box"], data.uids["duck"], data.uids["box"]]))
    by_uid = {record.source_id: record for record in records}
    assert [record.key for record in records] == sorted(f"objaverse/{data.uids[n]}" for n in ("box", "duck"))
    box = by_uid[data.uids["box"]]
    assert box.source == "objaverse" and box.category == "coffee table"
    assert box.asset == {"kind": "objaverse", "uid": data.uids["box"], "path": f"glbs/000-000/{data.uids['box']}.glb"}
    assert box.attrs == {
        "uid": data.uids["box"],
        "license": "cc0",
        "author": "Box Author",
        "author_url": "https://sketchfab.com/Box",
        "name": "Box",
        "source_url": f"https://sketchfab.com/3d-models/{data.uids['box']}",
        "lvis_category": "coffee_table",
    }
    # Annotations are fetched into the objaverse layout; GLBs only when the renderer asks.
    assert (cache / "object-paths.json.gz").is_file() and (cache / "lvis-annotations.json.gz").is_file()
    assert (cache / "metadata/000-000.json.gz").is_file() and not (cache / "metadata/000-001.json.gz").exists()
    assert not (cache / "glbs").exists()


def test_source_name_is_the_key_prefix(hub, data, cache):
    [record] = list_objects(config(cache, uids=[data.uids["duck"]], name="objv1"))
    assert record.key == f"objv1/{data.uids['duck']}" and record.source == "objv1"


def test_select_by_uids_file(hub, data, cache, tmp_path):
    listing = tmp_path / "uids.txt"
    listing.write_text(f"# chosen by hand\n{data.uids['truck']}\n\n  {data.uids['armchair1']}  \n")
    records = list_objects(config(cache, uids_file=listing))
    assert {record.source_id: record.category for record in records} == {
        data.uids["truck"]: "bow",
        data.uids["armchair1"]: "armchair",
    }


def test_select_by_csv_categories_win_and_empty_falls_back_to_lvis(hub, data, cache, tmp_path):
    table = tmp_path / "objects.csv"
    rows = [f"{data.uids['monkey']},monkey head", f"{data.uids['box']},", f"{data.uids['duck']},rubber duck"]
    table.write_text("uid,category\n" + "\n".join(rows) + "\n")
    records = list_objects(config(cache, csv=table))
    assert {record.source_id: record.category for record in records} == {
        data.uids["monkey"]: "monkey head",
        data.uids["box"]: "coffee table",
        data.uids["duck"]: "rubber duck",
    }
    monkey = next(record for record in records if record.source_id == data.uids["monkey"])
    assert monkey.attrs["lvis_category"] is None and monkey.attrs["license"] == "by-sa"


def test_lvis_per_category_is_deterministic_for_a_seed(hub, data, cache):
    def chosen(seed, n):
        settings = config(cache, lvis_categories=["armchair", "duck"], per_category=n, seed=seed)
        return [record.source_id for record in list_objects(settings)]

    first = chosen(0, 2)
    assert first == chosen(0, 2)
    assert len(first) == 3 and data.uids["duck"] in first  # duck has one object, armchair gives 2
    assert set(first) <= set(chosen(0, 4))  # a larger N keeps what a smaller one chose
    assert len({tuple(chosen(seed, 2)) for seed in range(6)}) > 1  # the seed matters


def test_per_category_sampling_ignores_input_order():
    picks = [Pick(fake_uid(f"o{index}"), None, "cat" if index % 2 else "dog") for index in range(40)]
    shuffled = picks[:]
    random.Random(1).shuffle(shuffled)

    def group(pick):
        return pick.lvis

    chosen = {pick.uid for pick in sample_per_category(picks, 5, 7, group)}
    assert chosen == {pick.uid for pick in sample_per_category(shuffled, 5, 7, group)}
    assert len(chosen) == 10


def test_all_lvis_categories(hub, data, cache):
    records = list_objects(config(cache, lvis_categories="all"))
    assert {record.source_id for record in records} == {uid for name, uid in data.uids.items() if name != "monkey"}
    assert {record.category for record in records} == {"duck", "coffee table", "bow", "armchair"}


def test_category_map_overrides_readable_names(hub, data, cache, tmp_path):
    mapping = tmp_path / "names.csv"
    mapping.write_text("lvis,category\ncoffee_table,low table\nbow_(weapon),longbow\n")
    records = list_objects(config(cache, lvis_categories="all", category_map=mapping))
    assert {record.category for record in records} == {"duck", "low table", "longbow", "armchair"}
    truck = next(record for record in records if record.source_id == data.uids["truck"])
    assert truck.attrs["lvis_category"] == "bow_(weapon)"

    mapping.write_text("lvis,category\ncofee_table,table\n")
    with pytest.raises(SourceError, match="cofee_table"):
        list_objects(config(cache, lvis_categories="all", category_map=mapping))


def test_licence_filter_runs_before_the_per_category_draw(hub, data, cache, caplog):
    with caplog.at_level(logging.INFO):
        records = list_objects(config(cache, lvis_categories=["armchair"], licenses=["by"]))
    assert {record.source_id for record in records} == {data.uids[f"armchair{index}"] for index in (0, 2, 4)}
    assert "dropped 3 of 6 objects" in caplog.text
    drawn = list_objects(config(cache, lvis_categories=["armchair"], licenses=["by"], per_category=2))
    assert len(drawn) == 2 and all(record.attrs["license"] == "by" for record in drawn)
    with pytest.raises(SourceError, match=r"no selected object has a licence in \['cc0'\].*'by', 'by-nc'"):
        list_objects(config(cache, lvis_categories=["armchair"], licenses=["cc0"]))


def test_unknown_and_uncategorised_uids_are_named(hub, data, cache):
    with pytest.raises(SourceError, match=r"1 uid\(s\) are not in Objaverse 1.0.*deadbeef"):
        list_objects(config(cache, uids=[data.uids["duck"], "deadbeef"]))
    with pytest.raises(SourceError, match=rf"no LVIS category.*{data.uids['monkey']}.*csv"):
        list_objects(config(cache, uids=[data.uids["monkey"]]))
    with pytest.raises(SourceError, match=r"armchiar.*did you mean \['armchair'\]"):
        list_objects(config(cache, lvis_categories=["armchiar"]))


def test_missing_annotations_on_the_hub_stop_the_source(hub, cache):
    hub.fail("object-paths.json.gz", 404)
    with pytest.raises(SourceError, match=r"object-paths.json.gz.*not_found.*HTTP 404"):
        list_objects(config(cache, lvis_categories="all"))


def test_damaged_cached_annotation_is_downloaded_again(hub, data, cache):
    data.write_cache(cache)
    (cache / "lvis-annotations.json.gz").write_bytes(data.files["lvis-annotations.json.gz"][:20])
    assert len(list_objects(config(cache, lvis_categories="all"))) == 9
    assert hub.count() == 1 and hub.count("lvis-annotations.json.gz") == 1


# --- downloads -------------------------------------------------------------------------------


def test_download_then_cached_fetch_makes_no_request(hub, data, cache):
    with make_fetcher(config(cache, uids=["x"])) as fetcher:
        path = fetcher.fetch(data.asset("duck"))
        assert path == cache / data.path("duck") and path.read_bytes() == data.files[data.path("duck")]
        assert hub.count() == 1
        assert fetcher.fetch(data.asset("duck")) == path
    with make_fetcher(config(cache, uids=["x"])) as fetcher:
        fetcher.fetch(data.asset("duck"))
    assert hub.count() == 1 and leftovers(path.parent) == []


def test_objaverse_package_cache_is_used_without_a_request(hub, data, cache):
    data.write_cache(cache)
    records = list_objects(config(cache, lvis_categories="all", licenses=["by", "cc0", "by-nc"]))
    with make_fetcher(config(cache, uids=["x"])) as fetcher:
        paths = [fetcher.fetch(record.asset) for record in records]
    assert len(paths) == 9 and all(path.is_file() for path in paths)
    assert hub.count() == 0


def test_damaged_cached_glb_is_downloaded_again(hub, data, cache):
    data.write_cache(cache)
    target = cache / data.path("truck")
    target.write_bytes(data.files[data.path("truck")][:1000])
    with make_fetcher(config(cache, uids=["x"])) as fetcher:
        assert fetcher.fetch(data.asset("truck")).read_bytes() == data.files[data.path("truck")]
    assert hub.count() == 1


def test_server_errors_are_retried(hub, data, cache):
    hub.fail(data.path("box"), 500, 503)
    with make_fetcher(config(cache, uids=["x"])) as fetcher:
        assert fetcher.fetch(data.asset("box")).read_bytes() == data.files[data.path("box")]
    assert hub.count(data.path("box")) == 3


def test_not_found_is_not_retried(hub, data, cache):
    hub.fail(data.path("box"), 404)
    with make_fetcher(config(cache, uids=["x"])) as fetcher, pytest.raises(AssetUnavailable) as raised:
        fetcher.fetch(data.asset("box"))
    assert raised.value.reason == "not_found" and "HTTP 404" in raised.value.detail
    copy = pickle.loads(pickle.dumps(raised.value))
    assert (copy.reason, copy.detail, str(copy)) == (raised.value.reason, raised.value.detail, str(raised.value))
    assert hub.count() == 1 and not (cache / data.path("box")).exists()


def test_persistent_server_errors_give_download_failed(hub, data, cache):
    hub.fail(data.path("box"), 502, 502, 502)
    with make_fetcher(config(cache, uids=["x"])) as fetcher, pytest.raises(AssetUnavailable) as raised:
        fetcher.fetch(data.asset("box"))
    assert raised.value.reason == "download_failed" and "after 3 attempts" in raised.value.detail


def test_cut_body_is_detected_and_retried(hub, data, cache):
    hub.fail(data.path("duck"), "truncate")
    with make_fetcher(config(cache, uids=["x"])) as fetcher:
        assert fetcher.fetch(data.asset("duck")).read_bytes() == data.files[data.path("duck")]
    assert hub.count() == 2


@pytest.mark.parametrize(
    ("fault", "requests", "said"),
    [
        ("truncate", 3, "body cut after"),  # a cut transfer may come whole next time: every retry
        ("bad_magic", 2, "not a GLB"),  # complete but wrong bytes: asked once more only
        ("empty", 2, "an empty file (0 bytes), not a GLB"),
    ],
)
def test_a_download_that_stays_bad_is_corrupt(hub, data, cache, fault, requests, said):
    hub.fail(data.path("duck"), fault, fault, fault)
    with make_fetcher(config(cache, uids=["x"])) as fetcher, pytest.raises(AssetUnavailable) as raised:
        fetcher.fetch(data.asset("duck"))
    assert raised.value.reason == "corrupt_download"
    assert (
        said in raised.value.detail and data.path("duck") in raised.value.detail and ".tmp-" not in raised.value.detail
    )
    assert hub.count() == requests
    folder = cache / data.path("duck")
    assert not folder.exists() and leftovers(folder.parent) == []


def test_stalled_server_fails_within_the_timeout(hub, data, cache):
    hub.fail(data.path("duck"), "stall", "stall")
    started = time.monotonic()
    with make_fetcher(config(cache, uids=["x"], timeout_s=0.5, retries=1)) as fetcher:
        with pytest.raises(AssetUnavailable) as raised:
            fetcher.fetch(data.asset("duck"))
    assert raised.value.reason == "download_failed"
    assert time.monotonic() - started < 4
    assert hub.count() == 2


def test_token_is_sent_but_never_shown(hub, data, cache, monkeypatch, caplog):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.fail(data.path("box"), 404)
    hub.fail(data.path("monkey"), 500, 500, 500)
    with caplog.at_level(logging.DEBUG), make_fetcher(config(cache, uids=["x"])) as fetcher:
        fetcher.fetch(data.asset("duck"))
        messages = []
        for name in ("box", "monkey"):
            with pytest.raises(AssetUnavailable) as raised:
                fetcher.fetch(data.asset(name))
            messages += [str(raised.value), repr(raised.value), raised.value.detail]
    assert {request["authorization"] for request in hub.requests} == {f"Bearer {TOKEN}"}
    assert all(TOKEN not in message for message in messages) and TOKEN not in caplog.text


def test_token_is_not_forwarded_to_another_host(hub, data, cache, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.fail(data.path("box"), "redirect")
    with make_fetcher(config(cache, uids=["x"])) as fetcher:
        assert fetcher.fetch(data.asset("box")).read_bytes() == data.files[data.path("box")]
    hub_request, cdn_request = hub.requests
    assert hub_request["authorization"] == f"Bearer {TOKEN}"
    assert cdn_request["path"].startswith("/cdn/") and cdn_request["authorization"] is None


def test_concurrent_fetches_download_each_file_once(hub, data, cache):
    names = ["duck", "box", "truck", "monkey", "armchair0"] * 3
    with make_fetcher(config(cache, uids=["x"])) as fetcher:
        results, errors = {}, []

        def work(name):
            try:
                results[name] = fetcher.fetch(data.asset(name)).read_bytes()
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=work, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
    assert errors == []
    assert all(results[name] == data.files[data.path(name)] for name in set(names))
    assert hub.count() == 5


def test_release_deletes_only_what_this_run_downloaded(hub, data, cache):
    data.write_cache(cache)
    (cache / data.path("duck")).unlink()
    with make_fetcher(config(cache, uids=["x"], delete_after_render=True)) as fetcher:
        downloaded, kept = fetcher.fetch(data.asset("duck")), fetcher.fetch(data.asset("box"))
        fetcher.release(data.asset("duck"))
        fetcher.release(data.asset("box"))
    assert not downloaded.exists() and kept.is_file()
    with make_fetcher(config(cache, uids=["x"])) as fetcher:
        path = fetcher.fetch(data.asset("truck"))
        fetcher.release(data.asset("truck"))
    assert path.is_file()


def test_assets_that_could_escape_the_cache_are_refused(hub, data, cache):
    uid = data.uids["duck"]
    with make_fetcher(config(cache, uids=["x"])) as fetcher:
        for asset in (
            {"kind": "objaverse", "uid": uid, "path": f"../../{uid}.glb"},
            {"kind": "objaverse", "uid": "other", "path": data.path("duck")},
            {"kind": "file", "path": "/etc/passwd"},
        ):
            with pytest.raises(ManifestError):
                fetcher.fetch(asset)
    assert hub.count() == 0


def test_stale_temp_files_are_cleaned_but_live_ones_kept(tmp_path):
    final = tmp_path / "a.glb"
    live_path, live_fd = create_locked_temp(final)
    dead_path, dead_fd = create_locked_temp(final)
    os.close(dead_fd)  # as if its writer died
    assert remove_stale_temps(final) == 1
    assert live_path.exists() and not dead_path.exists()
    os.close(live_fd)


_CHILD = """
import json, sys
from mvcap_build.render.sources.objaverse import ObjaverseSourceConfig, make_fetcher
make_fetcher(ObjaverseSourceConfig.model_validate_json(sys.argv[1])).fetch(json.loads(sys.argv[2]))
"""


def test_sigkill_mid_download_leaves_no_file_and_next_fetch_succeeds(hub, data, cache):
    settings = config(cache, uids=["x"], timeout_s=20)
    final = cache / data.path("truck")
    hub.fail(data.path("truck"), "slow")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, settings.model_dump_json(), json.dumps(data.asset("truck"))],
        cwd=REPO,
        env=os.environ.copy(),
    )
    try:
        assert hub.slow_started.wait(20), "the child never started downloading"
        deadline = time.monotonic() + 10
        while not any(path.stat().st_size > 0 for path in final.parent.glob(f"*{TMP_MARK}*")):
            assert time.monotonic() < deadline, "no partial temp file appeared"
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert not final.exists() and len(leftovers(final.parent)) == 1
    hub.release.set()
    with make_fetcher(settings) as fetcher:
        assert fetcher.fetch(data.asset("truck")).read_bytes() == data.files[data.path("truck")]
    assert leftovers(final.parent) == []
