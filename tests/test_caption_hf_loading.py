"""Where the transformers backend finds its model: local folder, Hugging Face cache, or the Hub.

huggingface_hub reads HF_HOME, HF_ENDPOINT and HF_HUB_OFFLINE when it is imported, so every test
that needs a particular cache or endpoint runs the backend in a child process. The only fakes are
at the network boundary: a closed port, a port that never answers, a tiny HTTP server.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("transformers")

from mvcap_build.tiny_models.tiny_llava import build_tiny_llava  # noqa: E402

NOT_CACHED = "some-org/not-cached-model"
TINY_ID = "tiny-org/tiny-llava"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FAKE_TOKEN = "hf_thisIsAFakeTokenThatMustNeverBePrinted"

# Runs in the child: construct the backend, report the error (if any) and how long the
# constructor took once torch and transformers are imported (that import alone takes ~1 s here).
CONSTRUCT = """
import json, sys, time
import torch, transformers
from mvcap_build.caption.backends.hf import HFBackend, HFBackendError
from mvcap_build.caption.config import HFBackendConfig
start = time.monotonic()
try:
    HFBackend(HFBackendConfig(model=sys.argv[1], hub_timeout_s=float(sys.argv[2])))
    outcome = {"error": None}
except HFBackendError as error:
    outcome = {"error": str(error)}
outcome["constructor_s"] = time.monotonic() - start
print(json.dumps(outcome))
"""

# Runs in the child: load from the cache and caption one image, recording every network attempt.
CAPTION_FROM_CACHE = """
import json, sys
attempts = []
def record(event, args):
    if event in ("socket.connect", "socket.getaddrinfo"):
        attempts.append(f"{event} {args[1:]!r}")
sys.addaudithook(record)
from mvcap_build.caption.backends.base import CaptionRequest
from mvcap_build.caption.backends.hf import HFBackend
from mvcap_build.caption.config import HFBackendConfig
from mvcap_build.caption.models import model_revision
backend = HFBackend(HFBackendConfig(model=sys.argv[1], max_new_tokens=6))
request = CaptionRequest(key="k", view_index=0, image_path=sys.argv[2], prompt="Describe it.", category="chair")
[result] = backend.caption([request])
print(json.dumps({
    "text": result.text,
    "reason": result.reason,
    "revision": model_revision(sys.argv[1]),
    "revision_main": model_revision(sys.argv[1], "main"),
    "revision_unknown": model_revision("some-org/unknown"),
    "revision_pinned": model_revision("some-org/unknown", "f" * 40),
    "network": attempts,
}))
"""

# Runs in the child: fingerprint a local folder without importing torch or transformers.
LOCAL_REVISION = """
import json, sys
from mvcap_build.caption.models import model_revision
print(json.dumps({"revision": model_revision(sys.argv[1]),
                  "heavy": [name for name in ("torch", "transformers") if name in sys.modules]}))
"""


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("models") / "tiny-llava")


def _closed_port() -> int:
    """A port nothing listens on: bind to get a free one, then close it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _child_env(hf_home: Path, endpoint: str, **extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))
    }
    env.update(HF_HOME=str(hf_home), HF_ENDPOINT=endpoint, OMP_NUM_THREADS="1", **extra)
    return env


def _run_child(script: str, args: list[str], env: dict[str, str], cwd: Path) -> tuple[dict, float, str]:
    """Run `script` in a fresh interpreter; return its JSON answer, the wall time and its stderr."""
    start = time.monotonic()
    child = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    elapsed = time.monotonic() - start
    assert child.returncode == 0, child.stderr
    return json.loads(child.stdout.strip().splitlines()[-1]), elapsed, child.stderr


def test_unreachable_hub_fails_within_seconds_saying_what_to_do(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    env = _child_env(tmp_path / "hf-home", endpoint)

    outcome, elapsed, stderr = _run_child(CONSTRUCT, [NOT_CACHED, "10"], env, tmp_path)

    assert elapsed < 20, f"took {elapsed:.1f} s"
    assert outcome["constructor_s"] < 5
    message = outcome["error"]
    assert f"cannot reach the Hugging Face Hub at {endpoint}" in message
    assert str(tmp_path / "hf-home" / "hub") in message
    assert f"hf download {NOT_CACHED}" in message
    assert "HF_HUB_OFFLINE=1" in message
    assert "Retrying" not in stderr  # no backoff loop ran
    print(f"unreachable: constructor {outcome['constructor_s']:.2f} s, child {elapsed:.2f} s")


def test_offline_mode_fails_at_once_when_the_model_is_not_cached(tmp_path: Path) -> None:
    env = _child_env(tmp_path / "hf-home", f"http://127.0.0.1:{_closed_port()}", HF_HUB_OFFLINE="1")

    outcome, elapsed, _ = _run_child(CONSTRUCT, [NOT_CACHED, "10"], env, tmp_path)

    assert elapsed < 20, f"took {elapsed:.1f} s"
    assert outcome["constructor_s"] < 1  # no request at all
    message = outcome["error"]
    assert "not in the local Hugging Face cache" in message
    assert str(tmp_path / "hf-home" / "hub") in message
    assert f"hf download {NOT_CACHED}" in message and "unset HF_HUB_OFFLINE" in message
    print(f"offline: constructor {outcome['constructor_s']:.2f} s, child {elapsed:.2f} s")


def test_silent_hub_is_given_up_after_hub_timeout_s(tmp_path: Path) -> None:
    # Accepts TCP connections (the kernel's backlog) but never answers: a hanging proxy or firewall.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        env = _child_env(tmp_path / "hf-home", f"http://127.0.0.1:{silent.getsockname()[1]}")
        outcome, _, _ = _run_child(CONSTRUCT, [NOT_CACHED, "1.5"], env, tmp_path)

    assert 1.0 < outcome["constructor_s"] < 4
    assert "cannot reach the Hugging Face Hub" in outcome["error"]


class _NotFoundHub(BaseHTTPRequestHandler):
    """Answers every request as the Hub does for a missing or private repo."""

    status = 404
    headers_to_send: dict[str, str] = {}

    def do_GET(self) -> None:
        body = b'{"error": "Repository not found"}'
        self.send_response(self.status)
        for name, value in self.headers_to_send.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep pytest's output clean
        pass


@pytest.fixture
def not_found_hub(request: pytest.FixtureRequest) -> Iterator[str]:
    status, headers = request.param
    handler = type("Handler", (_NotFoundHub,), {"status": status, "headers_to_send": headers})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "not_found_hub",
    [(404, {"X-Error-Code": "RepoNotFound"}), (401, {}), (404, {})],
    indirect=True,
    ids=["hub-404", "bare-401", "bare-404"],
)
def test_missing_or_private_repo_says_so_without_printing_the_token(not_found_hub: str, tmp_path: Path) -> None:
    env = _child_env(tmp_path / "hf-home", not_found_hub, HF_TOKEN=FAKE_TOKEN)

    outcome, _, stderr = _run_child(CONSTRUCT, [NOT_CACHED, "10"], env, tmp_path)

    message = outcome["error"]
    assert "does not exist" in message and "HF_TOKEN" in message
    assert FAKE_TOKEN not in message and FAKE_TOKEN not in stderr


def _lay_out_as_hub_cache(model_dir: Path, hf_home: Path, repo_id: str, commit: str) -> None:
    """Copy a saved model where `hf download` would have put it (files copied, not symlinked)."""
    repo_dir = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(model_dir, repo_dir / "snapshots" / commit)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)


def test_cached_model_loads_without_any_network_request(tiny_llava: Path, tmp_path: Path) -> None:
    hf_home = tmp_path / "hf-home"
    _lay_out_as_hub_cache(tiny_llava, hf_home, TINY_ID, COMMIT)
    image = tmp_path / "view.png"
    Image.new("RGBA", (64, 64), (200, 30, 30, 255)).save(image)
    env = _child_env(hf_home, f"http://127.0.0.1:{_closed_port()}")

    outcome, _, stderr = _run_child(CAPTION_FROM_CACHE, [TINY_ID, str(image)], env, tmp_path)

    assert outcome["reason"] is None and isinstance(outcome["text"], str)
    assert outcome["network"] == []
    assert outcome["revision"] == outcome["revision_main"] == COMMIT
    assert outcome["revision_unknown"] == "unresolved"
    assert outcome["revision_pinned"] == "f" * 40
    assert "Retrying" not in stderr


def test_model_revision_of_a_local_folder_follows_its_config(tiny_llava: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_llava, folder)
    env = _child_env(tmp_path / "hf-home", f"http://127.0.0.1:{_closed_port()}")

    def revision() -> str:
        outcome, _, _ = _run_child(LOCAL_REVISION, [str(folder)], env, tmp_path)
        assert outcome["heavy"] == []  # fingerprinting must not import torch/transformers
        return outcome["revision"]

    first = revision()
    assert first.startswith("local:") and len(first) > len("local:")
    assert revision() == first  # stable
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["max_position_embeddings"] = 1024
    (folder / "config.json").write_text(json.dumps(config))
    changed = revision()
    assert changed != first
    with (folder / "model.safetensors").open("ab") as weights:
        weights.write(b"\0")
    assert revision() != changed  # the weights' sizes count too


def _mvcap(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mvcap_build", *args], env=env, capture_output=True, text=True, timeout=300
    )
    return result, time.monotonic() - start


def test_caption_command_with_an_unreachable_model_fails_within_seconds(
    captioned_root: Path, copy_of, tmp_path: Path
) -> None:
    """The issue's case end to end: `mvcap caption ROOT --model <not cached>` without network."""
    root = copy_of(captioned_root)
    runs_before = sorted((root / "runs").iterdir())
    env = _child_env(tmp_path / "hf-home", f"http://127.0.0.1:{_closed_port()}")
    result, elapsed = _mvcap(["caption", str(root), "--model", NOT_CACHED, "--quiet"], env)
    assert result.returncode == 2, result.stderr
    assert elapsed < 20, f"took {elapsed:.1f} s"
    assert "cannot reach the Hugging Face Hub" in result.stderr and "HF_HUB_OFFLINE=1" in result.stderr
    assert "Retrying" not in result.stderr and "Traceback" not in result.stderr
    assert sorted((root / "runs").iterdir()) == runs_before  # the run never started


def test_caption_command_uses_the_cached_model_and_records_its_commit(
    tiny_llava: Path, captioned_root: Path, copy_of, tmp_path: Path
) -> None:
    root = copy_of(captioned_root)
    shutil.rmtree(root / "captions")
    hf_home = tmp_path / "hf-home"
    _lay_out_as_hub_cache(tiny_llava, hf_home, TINY_ID, COMMIT)
    env = _child_env(hf_home, f"http://127.0.0.1:{_closed_port()}")
    result, _ = _mvcap(
        ["caption", str(root), "--model", TINY_ID, "--max-new-tokens", "4", "--no-gates", "--quiet"], env
    )
    assert result.returncode in (0, 1), result.stderr  # 1 only if the random model said nothing at all
    manifests = [json.loads(p.read_text()) for p in (root / "captions").rglob("*.json")]
    assert manifests, result.stdout + result.stderr
    for manifest in manifests:
        assert manifest["fingerprint"]["fields"]["revision"] == COMMIT
        assert {row["model"] for row in manifest["rows"]} == {TINY_ID}
    again, _ = _mvcap(["caption", str(root), "--model", TINY_ID, "--max-new-tokens", "4", "--no-gates", "--quiet"], env)
    assert again.returncode == 0 and f"{len(manifests)} already done" in again.stdout, again.stdout + again.stderr
