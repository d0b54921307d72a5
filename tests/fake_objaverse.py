"""A tiny Objaverse 1.0 for tests: real GLBs from ../shared/fixtures under fake uids, gzipped
annotation files in the Hub's layout, and a local HTTP server standing in for the Hub's
`resolve` endpoint, with faults that can be queued per file (5xx, 404, cut bodies, stalls)."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

PREFIX = "/datasets/allenai/objaverse/resolve/main/"
CDN_PREFIX = "/cdn/"
STALL_LIMIT_S = 10.0  # a stalled or slow response gives up by itself after this


def fake_uid(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()


def _gz_json(obj) -> bytes:
    return gzip.compress(json.dumps(obj).encode(), mtime=0)


def _metadata(uid: str, name: str, license_code: str) -> dict:
    return {
        "uid": uid,
        "name": name,
        "license": license_code,
        "viewerUrl": f"https://sketchfab.com/3d-models/{uid}",
        "user": {
            "username": f"{name.lower()}_user",
            "displayName": f"{name} Author",
            "profileUrl": f"https://sketchfab.com/{name}",
        },
    }


class FakeObjaverse:
    """The files of the fake dataset, by their Hub path. Objects by name -> uid in `uids`.

    000-000: duck (LVIS duck, by), box (coffee_table, cc0), truck (bow_(weapon), by-nc),
             monkey (no LVIS category, by-sa)
    000-001: armchair0..armchair5 (armchair; even ones by, odd ones by-nc)
    """

    def __init__(self, meshes: Path) -> None:
        objects = {
            "duck": ("000-000", "Duck.glb", "duck", "by"),
            "box": ("000-000", "BoxTextured.glb", "coffee_table", "cc0"),
            "truck": ("000-000", "CesiumMilkTruck.glb", "bow_(weapon)", "by-nc"),
            "monkey": ("000-000", "monkey.glb", None, "by-sa"),
        }
        for index in range(6):
            license_code = "by" if index % 2 == 0 else "by-nc"
            objects[f"armchair{index}"] = ("000-001", "BoxTextured.glb", "armchair", license_code)
        self.uids = {name: fake_uid(name) for name in objects}
        self.files: dict[str, bytes] = {}
        paths, lvis, metadata = {}, defaultdict(list), defaultdict(dict)
        for name, (folder, mesh, category, license_code) in objects.items():
            uid = self.uids[name]
            paths[uid] = f"glbs/{folder}/{uid}.glb"
            self.files[paths[uid]] = (meshes / mesh).read_bytes()
            if category:
                lvis[category].append(uid)
            metadata[folder][uid] = _metadata(uid, name.capitalize(), license_code)
        self.object_paths = paths
        self.files["object-paths.json.gz"] = _gz_json(paths)
        self.files["lvis-annotations.json.gz"] = _gz_json(dict(lvis))
        for folder, entries in metadata.items():
            self.files[f"metadata/{folder}.json.gz"] = _gz_json(entries)

    def path(self, name: str) -> str:
        return self.object_paths[self.uids[name]]

    def asset(self, name: str) -> dict:
        return {"kind": "objaverse", "uid": self.uids[name], "path": self.path(name)}

    def write_cache(self, cache_dir: Path) -> None:
        """Lay the files out as `objaverse==0.1.7` leaves them in ~/.objaverse/hf-objaverse-v1."""
        for relpath, data in self.files.items():
            target = cache_dir / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        hub = self.server.hub
        if self.path.startswith(CDN_PREFIX):
            relpath, fault = self.path[len(CDN_PREFIX) :], None
        elif self.path.startswith(PREFIX):
            relpath = self.path[len(PREFIX) :]
            fault = hub.next_fault(relpath)
        else:
            relpath, fault = None, 404
        hub.record(self.path, relpath, self.headers.get("Authorization"))
        data = hub.files.get(relpath) if relpath else None
        try:
            self._respond(hub, relpath, data, fault)
        except OSError:  # the client went away (timed out or was killed): nothing to do
            pass

    def _respond(self, hub: FakeHub, relpath, data, fault) -> None:
        if fault == "stall":
            hub.release.wait(STALL_LIMIT_S)
            return
        if isinstance(fault, int) or data is None:
            self.send_response(fault if isinstance(fault, int) else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if fault == "redirect":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_port}{CDN_PREFIX}{relpath}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if fault == "bad_magic":
            data = b"NOPE" + data[4:]
        if fault == "empty":  # a zero-byte file, served complete (the Hub holds a few)
            data = b""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault == "truncate":
            self.wfile.write(data[: len(data) // 2])  # then HTTP/1.0 closes the connection
            return
        if fault == "slow":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            hub.slow_started.set()
            hub.release.wait(STALL_LIMIT_S)
        else:
            self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    hub: FakeHub


class FakeHub:
    """An HTTP server on 127.0.0.1 serving `files` at the Hub's resolve paths.

    `fail(relpath, *faults)` queues faults for the next requests of that file, one per request:
    an HTTP status, "truncate" (half the body under the full Content-Length), "bad_magic", "empty",
    "stall" (never answers), "slow" (half the body, then waits), "redirect" (to the same server
    under another host name, as the Hub redirects to its CDN).
    """

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.release = threading.Event()  # set to end stalls and slow bodies
        self.slow_started = threading.Event()
        self._faults: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()
        self.requests: list[dict] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def fail(self, relpath: str, *faults) -> None:
        with self._lock:
            self._faults[relpath].extend(faults)

    def next_fault(self, relpath: str):
        with self._lock:
            queue = self._faults.get(relpath)
            return queue.popleft() if queue else None

    def record(self, path: str, relpath: str | None, authorization: str | None) -> None:
        with self._lock:
            self.requests.append({"path": path, "relpath": relpath, "authorization": authorization})

    def count(self, relpath: str | None = None) -> int:
        with self._lock:
            return sum(1 for request in self.requests if relpath is None or request["relpath"] == relpath)


@pytest.fixture(scope="module")
def data() -> FakeObjaverse:
    """The fake dataset (fixture meshes under fake uids), built once per test module."""
    from conftest import MESHES

    return FakeObjaverse(MESHES)


@pytest.fixture
def hub(data, monkeypatch):
    """The fake Hub serving `data`, with HF_ENDPOINT pointing at it and no token."""
    with FakeHub(data.files) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        for name in ("NO_PROXY", "no_proxy"):  # a proxy set for the machine must not catch 127.0.0.1
            monkeypatch.setenv(name, "127.0.0.1,localhost")
        yield server
