"""The HTTP policy both clients share (mvcap_build.http): Retry-After in each form servers send,
backoff, and a bearer token that stays with its host. Real `requests` against a local server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from mvcap_build.http import MAX_RETRY_AFTER_S, BearerToken, backoff_delay, retry_after

TOKEN = "hf_thisIsAFakeTokenThatMustNeverBePrinted"


class _Handler(BaseHTTPRequestHandler):
    """/same -> /target on this host; /other -> /target on this server under the name localhost;
    /busy/VALUE -> 429 with Retry-After: VALUE. Records each request's Authorization header."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        server = self.server
        server.seen.append((self.path, self.headers.get("Authorization")))
        port = server.server_port
        if self.path == "/same":
            return self._send(302, {"Location": "/target"})
        if self.path == "/other":
            return self._send(302, {"Location": f"http://localhost:{port}/target"})
        if self.path.startswith("/busy/"):
            return self._send(429, {"Retry-After": self.path.removeprefix("/busy/").replace("%20", " ")})
        return self._send(200)

    def _send(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def url(server: ThreadingHTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_port}{path}"


def test_the_token_follows_a_redirect_on_its_host_only(server):
    auth = BearerToken(TOKEN)
    with requests.Session() as session:
        assert session.get(url(server, "/same"), auth=auth, timeout=5).status_code == 200
        assert session.get(url(server, "/other"), auth=auth, timeout=5).status_code == 200
    bearer = f"Bearer {TOKEN}"
    assert server.seen == [("/same", bearer), ("/target", bearer), ("/other", bearer), ("/target", None)]


def test_a_netrc_entry_does_not_replace_the_token(server, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert requests.get(url(server, "/target"), auth=BearerToken(TOKEN), timeout=5).status_code == 200
    assert requests.get(url(server, "/target"), timeout=5).status_code == 200  # the entry is read
    assert [auth for _, auth in server.seen] == [f"Bearer {TOKEN}", "Basic c29tZW9uZTpuZXRyYy1zZWNyZXQ="]


def test_the_token_is_never_shown():
    auth = BearerToken(TOKEN)
    assert TOKEN not in repr(auth) and TOKEN not in str(auth)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),  # not RFC 9110's form, but some APIs send it
        (" 2 ", 2.0),
        ("3600", MAX_RETRY_AFTER_S),  # capped: longer waits are the retries' job
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_in_seconds(server, value, expected):
    response = requests.get(url(server, f"/busy/{value}"), timeout=5)
    assert response.status_code == 429
    assert retry_after(response.headers) == expected


def test_retry_after_as_an_http_date(server):
    later = requests.get(url(server, f"/busy/{formatdate(time.time() + 20, usegmt=True)}"), timeout=5)
    assert 17 <= retry_after(later.headers) <= 20
    past = requests.get(url(server, f"/busy/{formatdate(time.time() - 20, usegmt=True)}"), timeout=5)
    assert retry_after(past.headers) == 0.0
    far = requests.get(url(server, "/busy/Fri, 31 Dec 2100 23:59:59 GMT"), timeout=5)
    assert retry_after(far.headers) == MAX_RETRY_AFTER_S
    assert retry_after({}) is None


def test_backoff_doubles_with_jitter_and_waits_at_least_what_the_server_asked():
    for attempt in (1, 2, 3):
        delays = [backoff_delay(attempt, 1.0) for _ in range(200)]
        assert 2 ** (attempt - 1) * 0.5 <= min(delays) and max(delays) <= 2 ** (attempt - 1)
    assert backoff_delay(1, 0.01, retry_after_s=2.0) == 2.0
    assert backoff_delay(3, 10.0, retry_after_s=0.0) >= 20.0
