"""The OpenAI-compatible backend against a real local chat-completions server (no network).

`FakeVLM` is a stdlib HTTP server on 127.0.0.1 that checks what a real server would get (a
decodable image of the right size, RGBA composited on white), answers a caption made from the
prompt and the picture, and injects faults per prompt: 429 with Retry-After, 500, 400, an answer
too slow for the client's timeout, malformed JSON, an answer without content, a refused key.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import caption
from PIL import Image, ImageDraw

from mvcap_build.caption.backends.base import CaptionRequest
from mvcap_build.caption.backends.openai import OpenAIBackend, OpenAIBackendError
from mvcap_build.caption.config import OpenAIBackendConfig
from mvcap_build.dataset import DatasetRoot, FailureLedger, read_caption_manifest, read_objects
from mvcap_build.errors import EnvironmentBroken

KEY_ENV = "MVCAP_TEST_OPENAI_KEY"
MAX_SIDE = 48  # test views are 96x64, so the server must get 48x32
PALETTE = {
    "red": (200, 30, 30),
    "green": (30, 160, 60),
    "blue": (40, 60, 220),
    "yellow": (240, 200, 20),
    "purple": (120, 40, 160),
    "white": (255, 255, 255),
    "grey": (128, 128, 128),
    "black": (0, 0, 0),
}
SQUARE_COLOURS = ["red", "green", "blue", "yellow", "purple"]


def colour_name(rgb) -> str:
    return min(PALETTE, key=lambda name: sum((a - b) ** 2 for a, b in zip(PALETTE[name], rgb)))


def server_caption(prompt: str, image: Image.Image) -> str:
    """What FakeVLM says: depends on the prompt and the pixels, so both must have arrived."""
    width, height = image.size
    return f"A {colour_name(image.getpixel((width // 2, height // 2)))} thing ({width}x{height}) for '{prompt}'."


class FakeVLM:
    """A chat-completions server in a daemon thread; the fixture stops it after each test.

    `faults[prompt]` lists what to do on that prompt's successive attempts ("429", "500", "400",
    "slow", "malformed", "no_content"); after the list, it answers normally. `problems` collects
    what the server found wrong in a request (a test fails on any).
    """

    def __init__(self) -> None:
        self.faults: dict[str, list[str]] = {}
        self.expected_format = "JPEG"
        self.expected_max_side = MAX_SIDE
        self.expected_key: str | None = None  # answer 401 unless this bearer key comes
        self.answer_delay_s = 0.0  # every normal answer takes this long, so requests overlap
        self.slow_s = 3.0  # how late a "slow" answer comes
        self.retry_after = "1"
        self.problems: list[str] = []
        self.attempts: Counter[str] = Counter()
        self.bodies: list[dict] = []
        self.authorizations: list[str | None] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FakeVLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # wakes "slow" answers
        self._httpd.shutdown()
        self._httpd.server_close()

    def handle(self, handler: _Handler) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            self._answer(handler)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up on a slow answer
            pass
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, handler: _Handler) -> None:
        if handler.path != "/v1/chat/completions":
            return _send(handler, 404, {"error": {"message": f"no route {handler.path}"}})
        authorization = handler.headers.get("Authorization")
        body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
        with self._lock:
            self.authorizations.append(authorization)
            self.bodies.append(body)
        if self.expected_key is not None and authorization != f"Bearer {self.expected_key}":
            given = (authorization or "").removeprefix("Bearer ")
            return _send(handler, 401, {"error": {"message": f"Incorrect API key provided: {given}"}})
        text, url = _text_and_image(body)
        with self._lock:
            self.attempts[text] += 1
            fault = self.faults.get(text, [])[self.attempts[text] - 1 : self.attempts[text]]
        fault = fault[0] if fault else "ok"
        if fault == "429":
            return _send(handler, 429, {"error": {"message": "rate limited"}}, {"Retry-After": self.retry_after})
        if fault in ("500", "400"):
            message = "internal error" if fault == "500" else "image too large\n  (limit 1 px)"
            return _send(handler, int(fault), {"error": {"message": message}})
        if fault == "malformed":
            return _send(handler, 200, b'{"choices": [')
        if fault == "no_content":
            return _send(handler, 200, {"choices": [{"message": {"role": "assistant"}}]})
        if fault == "slow" and self._stop.wait(self.slow_s):
            return None
        self._stop.wait(self.answer_delay_s)
        image = self._check_image(url)
        _send(
            handler,
            200,
            {"choices": [{"message": {"role": "assistant", "content": f"  {server_caption(text, image)}\n"}}]},
        )

    def _check_image(self, url: str) -> Image.Image:
        """Decode the data URL and note whatever a real model would have been wrong to get."""
        mime = f"data:image/{self.expected_format.lower()};base64,"
        if not url.startswith(mime):
            self.problems.append(f"data URL starts {url[:30]!r}, not {mime!r}")
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        image.load()
        if image.format != self.expected_format or image.mode != "RGB":
            self.problems.append(f"got a {image.format} {image.mode} image")
        if max(image.size) != self.expected_max_side:
            self.problems.append(f"got {image.size}, long side should be {self.expected_max_side}")
        width, height = image.size
        corners = [image.getpixel(xy) for xy in ((0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1))]
        if any(min(pixel) < 235 for pixel in corners):
            self.problems.append(f"transparent corners did not arrive white: {corners}")
        return image.convert("RGB")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

    def do_POST(self) -> None:
        self.server.fake.handle(self)  # type: ignore[attr-defined]

    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet test output
        pass


def _send(handler: BaseHTTPRequestHandler, status: int, body, headers: dict | None = None) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def _text_and_image(body: dict) -> tuple[str, str]:
    [message] = body["messages"]
    parts = {part["type"]: part for part in message["content"]}
    return parts["text"]["text"], parts["image_url"]["image_url"]["url"]


@pytest.fixture
def server():
    fake = FakeVLM().start()
    try:
        yield fake
    finally:
        fake.stop()
    assert fake.problems == []


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def make_requests(folder: Path, count: int) -> list[CaptionRequest]:
    """RGBA views, 96x64: a coloured square on a transparent background."""
    folder.mkdir(parents=True, exist_ok=True)
    result = []
    for index in range(count):
        image = Image.new("RGBA", (96, 64), (0, 0, 0, 0))
        ImageDraw.Draw(image).rectangle((24, 12, 72, 52), fill=PALETTE[SQUARE_COLOURS[index % 5]] + (255,))
        path = folder / f"{index:03d}.png"
        image.save(path)
        key, view = f"test/obj{index // 4}", index % 4
        result.append(
            CaptionRequest(
                key=key, view_index=view, image_path=path, prompt=f"Describe thing {index}.", category="thing"
            )
        )
    return result


def expected_caption(index: int) -> str:
    return f"A {SQUARE_COLOURS[index % 5]} thing (48x32) for 'Describe thing {index}.'."


def make_backend(server: FakeVLM, **overrides) -> OpenAIBackend:
    settings = {
        "model": "fake-vlm",
        "base_url": server.url,
        "api_key_env": KEY_ENV,
        "max_concurrency": 4,
        "timeout_s": 5.0,
        "retries": 2,
        "backoff_s": 0.01,
        "image_max_side": MAX_SIDE,
    }
    settings.update(overrides)
    return OpenAIBackend(OpenAIBackendConfig(**settings))


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_batch_comes_back_in_order_with_bounded_concurrency(server, tmp_path):
    server.answer_delay_s = 0.05
    requests = make_requests(tmp_path, 14)
    results = make_backend(server, max_concurrency=3, max_new_tokens=33, temperature=0.2).caption(requests)
    assert [r.text for r in results] == [expected_caption(i) for i in range(14)]  # stripped, in order
    assert all(r.reason is None for r in results)
    assert 2 <= server.max_in_flight <= 3
    body = server.bodies[0]
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("fake-vlm", 33, 0.2)
    assert body["messages"][0]["role"] == "user"


def test_png_images_at_their_own_max_side(server, tmp_path):
    server.expected_format, server.expected_max_side = "PNG", 40
    results = make_backend(server, image_format="png", image_max_side=40).caption(make_requests(tmp_path, 2))
    assert [r.text for r in results] == [
        f"A {c} thing (40x27) for 'Describe thing {i}.'." for i, c in enumerate(["red", "green"])
    ]


def test_429_and_500_are_retried_honouring_retry_after(server, tmp_path):
    requests = make_requests(tmp_path, 3)
    server.faults = {requests[0].prompt: ["429"], requests[1].prompt: ["500", "500"]}
    started = time.monotonic()
    results = make_backend(server, retries=2).caption(requests)
    assert [r.text for r in results] == [expected_caption(i) for i in range(3)]
    assert time.monotonic() - started >= 1.0  # Retry-After: 1, though backoff_s is 0.01
    assert server.attempts == {requests[0].prompt: 2, requests[1].prompt: 3, requests[2].prompt: 1}


def test_a_rejected_request_fails_alone_without_retries(server, tmp_path):
    requests = make_requests(tmp_path, 4)
    server.faults = {requests[1].prompt: ["400"]}
    results = make_backend(server).caption(requests)
    assert (results[1].text, results[1].reason) == (None, "request_rejected")
    assert results[1].detail == "400 image too large (limit 1 px)"
    assert server.attempts[requests[1].prompt] == 1
    assert [results[i].text for i in (0, 2, 3)] == [expected_caption(i) for i in (0, 2, 3)]


def test_an_unreadable_image_fails_alone(server, tmp_path):
    requests = make_requests(tmp_path, 4)
    requests[2].image_path.write_bytes(requests[2].image_path.read_bytes()[:40])
    results = make_backend(server).caption(requests)
    assert results[2].reason == "unreadable_image" and str(requests[2].image_path) in results[2].detail
    assert [results[i].text for i in (0, 1, 3)] == [expected_caption(i) for i in (0, 1, 3)]
    assert requests[2].prompt not in server.attempts  # never sent


def test_timeouts_are_retried_then_server_busy(server, tmp_path):
    requests = make_requests(tmp_path, 3)
    server.faults = {requests[0].prompt: ["slow"] * 5}
    results = make_backend(server, timeout_s=0.3, retries=1).caption(requests)
    assert results[0].reason == "server_busy"
    assert "no answer after 2 attempts" in results[0].detail and "0.3 s" in results[0].detail
    assert server.attempts[requests[0].prompt] == 2
    assert [r.text for r in results[1:]] == [expected_caption(1), expected_caption(2)]


def test_answers_without_text_are_bad_responses(server, tmp_path):
    requests = make_requests(tmp_path, 3)
    server.faults = {requests[0].prompt: ["malformed"], requests[1].prompt: ["no_content"]}
    results = make_backend(server).caption(requests)
    assert [r.reason for r in results] == ["bad_response", "bad_response", None]
    assert '{"choices": [' in results[0].detail
    assert server.attempts[requests[0].prompt] == 1


def test_a_batch_without_any_answer_stops_the_run(server, tmp_path):
    requests = make_requests(tmp_path, 3)
    server.faults = {request.prompt: ["500"] * 5 for request in requests}
    with pytest.raises(OpenAIBackendError, match="answered none of 3 requests.*HTTP 500 internal error"):
        make_backend(server, retries=1).caption(requests)


def test_a_refused_key_stops_the_run_and_is_never_shown(server, tmp_path, monkeypatch):
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv(KEY_ENV, secret)
    server.expected_key = "sk-the-right-one"  # the server echoes the wrong key, as OpenAI does
    requests = make_requests(tmp_path, 12)
    backend = make_backend(server, max_concurrency=2)
    with pytest.raises(EnvironmentBroken) as stopped:
        backend.caption(requests)
    message = str(stopped.value)
    assert isinstance(stopped.value, OpenAIBackendError)
    assert f"refused the API key in ${KEY_ENV}" in message and "HTTP 401" in message
    assert secret not in message and secret not in repr(stopped.value)
    assert secret not in repr(backend.__dict__.get("_auth"))
    assert len(server.authorizations) <= 2  # the first answers stop the call: no ledger for every object


def test_a_missing_key_is_named_when_the_server_wants_one(server, tmp_path):
    server.expected_key = "sk-the-right-one"
    with pytest.raises(OpenAIBackendError, match=rf"\${KEY_ENV} is not set"):
        make_backend(server).caption(make_requests(tmp_path, 1))


def test_the_key_goes_as_a_bearer_header_and_only_when_set(server, tmp_path, monkeypatch):
    requests = make_requests(tmp_path, 2)
    make_backend(server).caption(requests)
    assert server.authorizations == [None, None]
    monkeypatch.setenv(KEY_ENV, "sk-good")
    server.expected_key = "sk-good"
    results = make_backend(server).caption(requests)
    assert [r.text for r in results] == [expected_caption(0), expected_caption(1)]
    assert server.authorizations[2:] == ["Bearer sk-good"] * 2


def test_a_closed_port_stops_the_run_quickly(tmp_path):
    url = closed_port_url()
    config = OpenAIBackendConfig(model="fake-vlm", base_url=url, retries=2, backoff_s=0.05, max_concurrency=4)
    backend = OpenAIBackend(config)
    started = time.monotonic()
    with pytest.raises(
        EnvironmentBroken,
        match=rf"cannot reach {url} after 3 attempts.*start the server or set base_url/OPENAI_BASE_URL",
    ):
        backend.caption(make_requests(tmp_path, 8))
    assert time.monotonic() - started < 3


def test_an_unknown_model_or_endpoint_stops_the_run(server, tmp_path):
    wrong_root = server.url.removesuffix("/v1")  # the usual mistake: base_url without /v1
    with pytest.raises(
        OpenAIBackendError, match="no model 'fake-vlm' or no chat-completions endpoint.*usually ending in /v1"
    ):
        make_backend(server, base_url=wrong_root).caption(make_requests(tmp_path, 2))


def test_a_base_url_that_is_no_address_is_a_config_error():
    with pytest.raises(ValueError, match="not an http"):
        OpenAIBackend(OpenAIBackendConfig(model="m", base_url="localhost:8000/v1"))


def test_identity_names_the_server_without_key_or_request(monkeypatch):
    import requests

    def no_requests(*args, **kwargs):
        raise AssertionError("identity must not contact the server")

    monkeypatch.setattr(requests.Session, "request", no_requests)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-in-identity")
    config = OpenAIBackendConfig(model="fake-vlm", temperature=0.5)
    identity = OpenAIBackend.identity(config)
    assert identity == {
        "backend": "openai",
        "model": "fake-vlm",
        "server": "https://api.openai.com/v1",
        "max_new_tokens": 77,
        "temperature": 0.5,
        "image_max_side": 512,
        "image_format": "jpeg",
    }
    monkeypatch.setenv("OPENAI_BASE_URL", "http://gpu-box:8000/v1/")
    assert OpenAIBackend.identity(config)["server"] == "http://gpu-box:8000/v1"
    assert (
        OpenAIBackend.identity(config.model_copy(update={"base_url": "http://other/v1"}))["server"] == "http://other/v1"
    )
    assert "sk-never-in-identity" not in json.dumps(OpenAIBackend.identity(config))


def test_openai_backend_through_the_caption_stage(server, captioned_root, copy_of):
    root = DatasetRoot(copy_of(captioned_root))
    shutil.rmtree(root.path / "captions")  # captioned by the template backend
    server.expected_max_side = 32  # the renders are 32 px RGBA with transparent corners: sent as they are, on white
    backend = {"kind": "openai", "model": "fake-vlm", "base_url": server.url, "api_key_env": KEY_ENV}
    settings = {"backend": {**backend, "max_concurrency": 3, "backoff_s": 0.01}}
    summary = caption(root, settings)
    assert summary.done == 3 and not summary.failed
    assert list(FailureLedger(root, "caption")) == []
    objects = read_objects(root)
    manifests = list(root.caption_manifests())
    assert len(manifests) == 3 and len(server.bodies) == 12
    for path in manifests:
        manifest = read_caption_manifest(path)
        assert manifest.fingerprint.fields["server"] == server.url
        assert manifest.fingerprint.fields["backend"] == "openai"
        for row in manifest.rows:
            assert (row.backend, row.model) == ("openai", "fake-vlm")
            assert row.caption.startswith("A ") and row.caption.endswith(f"for '{row.prompt}'.")
            assert row.caption.split(" (")[1].startswith("32x32)")
            assert objects[manifest.key].category in row.prompt
