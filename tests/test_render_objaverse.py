"""`mvcap render` on the objaverse source, against a local HTTP server standing in for the Hub:
downloads ahead of the workers, failures in the ledger, licences in the objects table, the disk
budget, and a second run that asks the server for nothing."""

from __future__ import annotations

from conftest import render, tiny_render

from mvcap_build.dataset import DatasetRoot, FailureLedger, read_objects, read_views_manifest


def test_objaverse_objects_are_downloaded_rendered_and_ledgered(data, hub, tmp_path):
    cache = tmp_path / "cache"
    source = {
        "kind": "objaverse",
        "uids": [data.uids[name] for name in ("duck", "box", "truck")],
        "cache_dir": str(cache),
        "timeout_s": 2.0,
        "retries": 2,
        "backoff_s": 0.01,
        "download_workers": 2,
        "prefetch": 2,
        "delete_after_render": True,
    }
    hub.fail(data.path("duck"), 500)  # a server error, then the file: retried
    hub.fail(data.path("truck"), 404, 404, 404)  # gone for good: a ledger entry
    root = DatasetRoot(tmp_path / "root")
    summary = render(root, tiny_render(source=source, views={"num_views": 2}))
    assert summary.done == 2 and dict(summary.failed) == {"not_found": 1}
    [entry] = list(FailureLedger(root, "render"))
    assert entry.key == f"objaverse/{data.uids['truck']}" and entry.reason == "not_found"
    objects = read_objects(root)
    duck = objects[f"objaverse/{data.uids['duck']}"]
    assert duck.category == "duck" and duck.attrs["license"] == "by" and duck.attrs["author"] == "Duck Author"
    assert objects[f"objaverse/{data.uids['box']}"].category == "coffee table"
    manifest = read_views_manifest(root.view_manifest(duck.key))
    assert manifest.fingerprint.fields["asset.uid"] == data.uids["duck"]
    assert all(v.coverage > 0.05 for v in manifest.views)
    assert not list(cache.glob("glbs/*/*.glb"))  # delete_after_render: the disk budget
    requests = hub.count()
    again = render(root, tiny_render(source=source, views={"num_views": 2}))
    assert (again.done, again.already_done, again.skipped_failed) == (0, 2, 1)
    assert hub.count() == requests  # annotations cached, objects committed: nothing asked
