"""A stand-in for the Hugging Face Hub at the HTTP level, for tests of `mvcap export --hf-push`.

The real `huggingface_hub` client talks to it: point `HF_ENDPOINT` at `FakeHub.url` in a
subprocess, or set `huggingface_hub.constants.ENDPOINT` in process (the client reads the variable
once, at import). Xet must be off (`HF_HUB_DISABLE_XET=1`, or `constants.HF_HUB_DISABLE_XET`):
huggingface_hub 2.x picks Xet on the client side whenever `hf_xet` is installed, without asking the
server, and Xet storage is a protocol of its own that this fake does not speak. With Xet off the
client takes the plain LFS path: preupload -> LFS batch ("basic" transfer) -> PUT -> verify -> commit.

Endpoints (all under /api need `Authorization: Bearer hf_test_token`, else 401):
  GET  /api/whoami-v2
  POST /api/repos/create                             409 with the repo's url if it exists
  POST /api/validate-yaml                            the card's front matter must parse
  POST /api/datasets/{repo}/branch/{branch}          409 if it exists
  GET  /api/datasets/{repo}/tree/{rev}[/{path}]      ?recursive, paginated by `page_size` (Link header)
  POST /api/datasets/{repo}/preupload/{rev}          upload mode (lfs/regular) and the remote oid
  POST /api/datasets/{repo}/commit/{rev}             ndjson: header, file, lfsFile, deletedFile, deletedFolder
  POST /datasets/{repo}.git/info/lfs/objects/batch   "basic" upload actions for objects not stored yet
  PUT  /lfs-upload/{repo}/{oid}                      the presigned-URL stand-in: body must hash to oid
  POST /lfs-verify/{repo}                            the object must be stored
Anything else is answered 404 and, but for the client's own agent-registry fetch, listed in
`unexpected`.

What the tests read: `files(repo)` (path -> bytes), `entries(repo)` (LFS or regular), `commits`,
`lfs_puts`, `uploaded_bytes` (LFS PUT bodies plus regular-file contents sent in commits),
`created` (the create payloads, with visibility). `fail_commit(n, how)` makes the n-th commit
request from now fail with HTTP 500 or a dropped connection; `fail_upload(n)` refuses the n-th
LFS upload PUT.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

VALID_TOKEN = "hf_test_token"
USER = "tester"
# Like the Hub's default .gitattributes: these suffixes, and any file from 10 MB, are stored in LFS.
LFS_SUFFIXES = (".parquet", ".arrow", ".bin", ".safetensors", ".png", ".jpg", ".jpeg", ".webp", ".zip", ".gz", ".tar")
LFS_MIN_BYTES = 10 * 1024 * 1024
GITATTRIBUTES = b"".join(b"*%s filter=lfs diff=lfs merge=lfs -text\n" % s.encode() for s in LFS_SUFFIXES)


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(content: bytes) -> bytes:
    oid = hashlib.sha256(content).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(content)}\n".encode()


def stored_as_lfs(path: str, size: int) -> bool:
    return path.endswith(LFS_SUFFIXES) or size >= LFS_MIN_BYTES


@dataclass
class Entry:
    content: bytes
    lfs: bool

    def tree_item(self, path: str) -> dict:
        if not self.lfs:
            return {"type": "file", "oid": git_blob_id(self.content), "size": len(self.content), "path": path}
        pointer = lfs_pointer(self.content)
        lfs = {"oid": hashlib.sha256(self.content).hexdigest(), "size": len(self.content), "pointerSize": len(pointer)}
        return {"type": "file", "oid": git_blob_id(pointer), "size": len(self.content), "path": path, "lfs": lfs}

    def preupload_oid(self) -> str:
        """What the client compares with its own hash: the sha256 for LFS, the git blob id otherwise."""
        return hashlib.sha256(self.content).hexdigest() if self.lfs else git_blob_id(self.content)


@dataclass
class Repo:
    private: bool
    branches: dict[str, dict[str, Entry]] = field(default_factory=dict)  # revision -> path -> Entry
    lfs_store: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content


@dataclass
class Commit:
    repo_id: str
    revision: str
    summary: str
    added: list[str]
    deleted: list[str]
    regular_bytes: int


class FakeHub:
    def __init__(self, page_size: int = 4) -> None:
        self.page_size = page_size  # tree entries per page: small, so tests go through the pagination
        self.repos: dict[str, Repo] = {}
        self.created: list[dict] = []
        self.commits: list[Commit] = []
        self.lfs_puts: list[tuple[str, int]] = []  # (oid, bytes) of every upload PUT
        self.requests: list[str] = []
        self.unexpected: list[str] = []
        self._failures: dict[int, str] = {}  # commit request number -> "500" | "drop"
        self._commit_requests = 0
        self._upload_failures: set[int] = set()  # upload PUT numbers answered 403
        self._uploads = 0
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # -- serving ------------------------------------------------------------------------------
    def start(self) -> FakeHub:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- what tests set up and read ---------------------------------------------------------
    def fail_commit(self, n: int, how: str = "500") -> None:
        """The n-th commit request from now fails: HTTP 500, or "drop": the connection is closed unanswered."""
        assert how in ("500", "drop"), how
        with self._lock:
            self._failures[self._commit_requests + n] = how

    def fail_upload(self, n: int) -> None:
        """The n-th LFS upload PUT from now is refused (403, as storage answers an expired URL)."""
        with self._lock:
            self._upload_failures.add(self._uploads + n)

    def add_repo_file(self, repo_id: str, path: str, content: bytes, revision: str = "main") -> None:
        """A file someone else committed (a user's own file beside the export)."""
        with self._lock:
            self.repos[repo_id].branches[revision][path] = Entry(content, stored_as_lfs(path, len(content)))

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        with self._lock:
            return {path: entry.content for path, entry in self.repos[repo_id].branches[revision].items()}

    def entries(self, repo_id: str, revision: str = "main") -> dict[str, Entry]:
        with self._lock:
            return dict(self.repos[repo_id].branches[revision])

    @property
    def uploaded_bytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self.lfs_puts) + sum(c.regular_bytes for c in self.commits)

    # -- the Hub's side ---------------------------------------------------------------------
    def create_repo(self, payload: dict) -> tuple[int, dict]:
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        url = f"{self.url}/datasets/{repo_id}"
        if payload.get("type") != "dataset":
            return 400, {"error": "the fake hub only holds dataset repos"}
        with self._lock:
            self.created.append({**payload, "repo_id": repo_id, "private": payload.get("visibility") == "private"})
            if repo_id in self.repos:
                return 409, {"error": "You already created this dataset repo", "url": url}
            self.repos[repo_id] = Repo(private=payload.get("visibility") == "private")
            self.repos[repo_id].branches["main"] = {".gitattributes": Entry(GITATTRIBUTES, lfs=False)}
        return 200, {"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]}

    def commit(self, repo_id: str, revision: str, lines: list[dict]) -> tuple[int, dict, dict]:
        repo = self.repos[repo_id]
        files = dict(repo.branches[revision])
        header = lines[0]["value"] if lines and lines[0].get("key") == "header" else {}
        added, deleted, regular_bytes = [], [], 0
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                content = base64.b64decode(value["content"])
                files[value["path"]] = Entry(content, lfs=False)
                added.append(value["path"])
                regular_bytes += len(content)
            elif key == "lfsFile":
                content = repo.lfs_store.get(value["oid"])
                if content is None or ("size" in value and value["size"] != len(content)):
                    return 422, {"error": f"LFS object {value['oid']} for {value['path']} was never uploaded"}, {}
                files[value["path"]] = Entry(content, lfs=True)
                added.append(value["path"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    return 404, {"error": "A file with this name doesn't exist"}, {"X-Error-Code": "EntryNotFound"}
                deleted.append(value["path"])
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                for path in [p for p in files if p.startswith(prefix)]:
                    del files[path]
                    deleted.append(path)
            else:
                return 400, {"error": f"unknown commit line {key!r}"}, {}
        repo.branches[revision] = files
        self.commits.append(Commit(repo_id, revision, header.get("summary", ""), added, deleted, regular_bytes))
        oid = hashlib.sha1(f"{repo_id}@{len(self.commits)}".encode()).hexdigest()
        return (
            200,
            {
                "commitUrl": f"{self.url}/datasets/{repo_id}/commit/{oid}",
                "commitOid": oid,
                "pullRequestUrl": None,
                "success": True,
            },
            {},
        )

    def take_commit_failure(self) -> str | None:
        with self._lock:
            self._commit_requests += 1
            return self._failures.pop(self._commit_requests, None)

    def take_upload_failure(self) -> bool:
        with self._lock:
            self._uploads += 1
            return self._uploads in self._upload_failures


REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
ROUTES = [  # (method, pattern, handler method name)
    ("GET", r"/api/whoami-v2", "whoami"),
    ("POST", r"/api/repos/create", "create_repo"),
    ("POST", r"/api/validate-yaml", "validate_yaml"),
    ("POST", rf"/api/datasets/{REPO}/branch/(?P<branch>[^/]+)", "create_branch"),
    ("GET", rf"/api/datasets/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?", "tree"),
    ("POST", rf"/api/datasets/{REPO}/preupload/(?P<rev>[^/]+)", "preupload"),
    ("POST", rf"/api/datasets/{REPO}/commit/(?P<rev>[^/]+)", "commit"),
    ("POST", rf"/datasets/{REPO}\.git/info/lfs/objects/batch", "lfs_batch"),
    ("PUT", rf"/lfs-upload/{REPO}/(?P<oid>[0-9a-f]{{64}})", "lfs_put"),
    ("POST", rf"/lfs-verify/{REPO}", "lfs_verify"),
]
NO_AUTH = {"lfs_put"}  # a presigned storage URL carries its own authorization
# Asked for by the client on its own (best-effort agent detection for its user agent): answered
# 404, which the client takes as "no registry" and caches nothing in HF_HOME.
TOLERATED = {("GET", "/api/agent-harnesses")}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub

    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's name)
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # -- plumbing -----------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.body = self._read_body()
        self.hub.requests.append(f"{method} {url.path}")
        for route_method, pattern, name in ROUTES:
            match = re.fullmatch(pattern, url.path)
            if route_method == method and match:
                if name not in NO_AUTH and self.headers.get("Authorization") != f"Bearer {VALID_TOKEN}":
                    return self._send(401, {"error": "Invalid credentials in Authorization header"})
                args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                if "repo" in args and args["repo"] not in self.hub.repos:
                    return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                return getattr(self, name)(**args)
        if (method, url.path) not in TOLERATED:
            self.hub.unexpected.append(f"{method} {self.path}")
        self._send(404, {"error": f"the fake hub has no {method} {url.path}"})

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                chunk = self.rfile.read(size)
                self.rfile.readline()  # the CRLF after each chunk
                if size == 0:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json(self):
        return json.loads(self.body or b"{}")

    def _send(self, status: int, payload, headers: dict | None = None, content_type: str = "application/json") -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _branch(self, repo: str, rev: str) -> dict[str, Entry] | None:
        branch = self.hub.repos[repo].branches.get(rev)
        if branch is None:
            self._send(404, {"error": f"Invalid rev id: {rev}"}, {"X-Error-Code": "RevisionNotFound"})
        return branch

    # -- endpoints ----------------------------------------------------------------------------
    def whoami(self) -> None:
        self._send(
            200, {"type": "user", "name": USER, "auth": {"accessToken": {"displayName": "test", "role": "write"}}}
        )

    def create_repo(self) -> None:
        status, payload = self.hub.create_repo(self._json())
        self._send(status, payload)

    def validate_yaml(self) -> None:
        content = self._json().get("content", "")
        front = re.match(r"---\n(.*?)\n---\n", content, re.DOTALL)
        try:
            metadata = yaml.safe_load(front.group(1)) if front else None
        except yaml.YAMLError as error:
            return self._send(400, {"errors": [{"message": f"invalid YAML: {error}"}]})
        if front and not isinstance(metadata, dict):
            return self._send(400, {"errors": [{"message": "the metadata must be a mapping"}]})
        self._send(200, {"errors": [], "warnings": []})

    def create_branch(self, repo: str, branch: str) -> None:
        with self.hub._lock:
            branches = self.hub.repos[repo].branches
            if branch in branches:
                return self._send(409, {"error": "Reference already exists"})
            start = self._json().get("startingPoint") or "main"
            if start not in branches:
                return self._send(404, {"error": f"Invalid rev id: {start}"}, {"X-Error-Code": "RevisionNotFound"})
            branches[branch] = dict(branches[start])
        self._send(200, {})

    def tree(self, repo: str, rev: str, path: str = "") -> None:
        branch = self._branch(repo, rev)
        if branch is None:
            return
        recursive = self.query.get("recursive", "false").lower() == "true"
        prefix = f"{path.rstrip('/')}/" if path else ""
        items = {}
        for file_path, entry in sorted(branch.items()):
            if not file_path.startswith(prefix):
                continue
            parts = file_path[len(prefix) :].split("/")
            for depth in range(1, len(parts)):  # the folders on the way
                if recursive or depth == 1:
                    folder = prefix + "/".join(parts[:depth])
                    items[folder] = {
                        "type": "directory",
                        "oid": hashlib.sha1(folder.encode()).hexdigest(),
                        "size": 0,
                        "path": folder,
                    }
            if recursive or len(parts) == 1:
                items[file_path] = entry.tree_item(file_path)
        if path and not items:
            return self._send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
        listing = [items[key] for key in sorted(items)]
        start = int(self.query.get("cursor", 0))
        page = listing[start : start + self.hub.page_size]
        headers = {}
        if start + self.hub.page_size < len(listing):
            query = f"recursive={str(recursive).lower()}&expand=false&cursor={start + self.hub.page_size}"
            subpath = "/" + quote(path) if path else ""
            next_url = f"{self.hub.url}/api/datasets/{repo}/tree/{quote(rev, safe='')}{subpath}?{query}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        self._send(200, page, headers)

    def preupload(self, repo: str, rev: str) -> None:
        branch = self._branch(repo, rev)
        if branch is None:
            return
        answers = []
        for file in self._json()["files"]:
            sample = base64.b64decode(file["sample"])
            lfs = stored_as_lfs(file["path"], file["size"]) or b"\0" in sample  # binary content goes to LFS too
            remote = branch.get(file["path"])
            answers.append(
                {
                    "path": file["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": remote.preupload_oid() if remote else None,
                }
            )
        self._send(200, {"files": answers, "commitOid": "0" * 40})

    def commit(self, repo: str, rev: str) -> None:
        failure = self.hub.take_commit_failure()
        if failure == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)  # no answer at all: the client sees the connection end
            return
        if failure == "500":
            return self._send(500, {"error": "Internal Error (injected by the test)"})
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        with self.hub._lock:
            if rev not in self.hub.repos[repo].branches:
                return self._send(404, {"error": f"Invalid rev id: {rev}"}, {"X-Error-Code": "RevisionNotFound"})
            status, payload, headers = self.hub.commit(repo, rev, lines)
        self._send(status, payload, headers)

    def lfs_batch(self, repo: str) -> None:
        request = self._json()
        if request.get("operation") != "upload" or "basic" not in request.get("transfers", ["basic"]):
            return self._send(400, {"message": "the fake hub only takes basic LFS uploads"})
        stored = self.hub.repos[repo].lfs_store
        objects = []
        for obj in request["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in stored:  # stored objects get no actions: the client skips them
                answer["authenticated"] = True
                answer["actions"] = {
                    "upload": {"href": f"{self.hub.url}/lfs-upload/{repo}/{obj['oid']}"},
                    "verify": {"href": f"{self.hub.url}/lfs-verify/{repo}", "header": {}},
                }
            objects.append(answer)
        self._send(200, {"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")

    def lfs_put(self, repo: str, oid: str) -> None:
        if self.hub.take_upload_failure():
            return self._send(403, {"error": "Request has expired"})
        if hashlib.sha256(self.body).hexdigest() != oid:
            return self._send(400, {"error": "the body does not hash to the object id"})
        with self.hub._lock:
            self.hub.repos[repo].lfs_store[oid] = self.body
            self.hub.lfs_puts.append((oid, len(self.body)))
        self._send(200, {}, {"ETag": f'"{oid[:32]}"'})

    def lfs_verify(self, repo: str) -> None:
        request = self._json()
        content = self.hub.repos[repo].lfs_store.get(request["oid"])
        if content is None or len(content) != request["size"]:
            return self._send(404, {"error": "object not stored"})
        self._send(200, {})
