"""Request bodies on real servers, with both of uvicorn's HTTP parsers
(httptools, which ``python -m api`` uses, and h11):

- a wrong key is answered before the body is parsed, and the unread body is
  read and discarded so the client gets its 401 (not a reset) and the
  connection stays usable; a client waiting for ``100 Continue`` is answered
  at once, without it; a body that stops coming closes the connection;
- a body trickled slower than ``BODY_TIMEOUT_SECONDS`` gets a 408 naming the
  body, and the connection is closed.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from api.tests.conftest import FIGURES
from api.tests.helpers import API_PARENT, server_env, stop, wait_until_ready
from testkit import Server, free_port

pytestmark = [pytest.mark.server, pytest.mark.timeout(180)]

KEY = "s3cret-key"
#: Seconds a body may take; short, so that the slow tests stay short.
BODY_TIMEOUT = 2.0
THREE_MB = 3 * 1024 * 1024


@contextmanager
def _uvicorn(log: Path, http: str) -> Iterator[Server]:
    """The app under plain uvicorn with the ``http`` parser given (``python -m
    api`` always takes httptools when it is installed)."""
    port = free_port()
    env = server_env(API_KEY=KEY, BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT))
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "api.app.main:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--http", http, "--no-access-log"],
            cwd=API_PARENT, env=env, stdout=handle, stderr=subprocess.STDOUT,
        )  # fmt: skip
        server = Server(process, f"http://127.0.0.1:{port}", log)
        try:
            with httpx.Client(base_url=server.url, timeout=5) as client:
                wait_until_ready(client)
            yield server
        finally:
            stop(process)


@pytest.fixture(scope="module", params=["httptools", "h11"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    log = tmp_path_factory.mktemp(f"bodies-{request.param}") / "server.log"
    with _uvicorn(log, request.param) as running:
        yield running


def _address(server: Server) -> tuple[str, int]:
    parts = urlsplit(server.url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def _three_mb_of_houses() -> bytes:
    house = json.dumps({"Neighborhood": "NAmes", "GrLivArea": 1500, "OverallQual": 5})
    count = THREE_MB // (len(house) + 1)
    return ('{"inputs": [' + ",".join([house] * count) + "]}").encode()


def _head(raw: socket.socket) -> tuple[bytes, bytes]:
    """The status line and headers (lower case) of the answer, and what followed."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = raw.recv(65536)
        if not chunk:
            break
        answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    return head.lower(), rest


def _closed_within(raw: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection within ``seconds`` (reading on)."""
    raw.settimeout(seconds)
    try:
        while raw.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_a_wrong_key_is_answered_without_parsing_and_the_connection_is_reused(
    server: Server,
) -> None:
    """3 MB of houses (more than MAX_ROWS: parsed, they would be a 413) with a
    wrong key: 401, no parse stage in Server-Timing, and the next request on
    the same connection works (the body was drained, not taken for one)."""
    body = _three_mb_of_houses()
    host, port = _address(server)
    connection = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Content-Type": "application/json"}
    timings: dict[str, list[float]] = {"wrong": [], "right": []}
    for _ in range(3):
        for label, key in (("wrong", "guess"), ("right", KEY)):
            started = time.perf_counter()
            connection.request(
                "POST", "/api/v1/predict", body=body, headers={**headers, "X-API-Key": key}
            )
            response = connection.getresponse()
            answer = json.loads(response.read())
            timings[label].append(time.perf_counter() - started)
            if label == "wrong":
                assert response.status == 401
                assert answer["errors"][0]["field"] == "X-API-Key"
                assert "parse" not in (response.getheader("Server-Timing") or "")
            else:
                assert response.status == 413  # parsed, then refused for its rows
                assert answer["errors"][0]["field"] == "inputs"
                assert "parse" in (response.getheader("Server-Timing") or "")
            assert response.getheader("Connection") is None  # keep-alive
    connection.request("GET", "/api/v1/health")
    follow_up = connection.getresponse()
    assert follow_up.status == 200 and json.loads(follow_up.read())["status"] == "ok"
    connection.close()
    http_name = "h11" if "h11" in str(server.log) else "httptools"
    FIGURES[f"3mb_wrong_key_401_ms_{http_name}"] = round(min(timings["wrong"]) * 1000, 1)
    FIGURES[f"3mb_right_key_parsed_413_ms_{http_name}"] = round(min(timings["right"]) * 1000, 1)


def test_urllib_sending_3_mb_with_a_wrong_key_reads_the_401(server: Server) -> None:
    request = urllib.request.Request(
        f"{server.url}/api/v1/predict",
        data=_three_mb_of_houses(),
        headers={"Content-Type": "application/json", "X-API-Key": "guess"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 401
    assert json.loads(caught.value.read())["errors"][0]["field"] == "X-API-Key"


def test_a_wrong_key_waiting_for_100_continue_is_refused_at_once(server: Server) -> None:
    with socket.create_connection(_address(server), timeout=30) as raw:
        raw.sendall(
            b"POST /api/v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"X-API-Key: guess\r\nContent-Length: 3000000\r\nExpect: 100-continue\r\n\r\n"
        )
        head, _ = _head(raw)
        assert head.startswith(b"http/1.1 401"), head
        assert b"100 continue" not in head
        # The body was never asked for: the connection closes rather than wait for it.
        assert b"connection: close" in head
        assert _closed_within(raw, 10)


def test_a_wrong_key_with_a_body_that_stops_coming_closes_the_connection(
    server: Server,
) -> None:
    with socket.create_connection(_address(server), timeout=30) as raw:
        started = time.monotonic()
        raw.sendall(
            b"POST /api/v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"X-API-Key: guess\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 10_000
        )
        head, _ = _head(raw)
        waited = time.monotonic() - started
        assert head.startswith(b"http/1.1 401"), head
        assert b"connection: close" in head
        # Drained until the body's deadline, then answered and closed.
        assert BODY_TIMEOUT - 0.5 <= waited <= BODY_TIMEOUT + 5
        assert _closed_within(raw, 10)


@pytest.mark.parametrize("path", ["/api/v1/predict", "/api/v1/health"])
def test_a_trickled_body_gets_408_and_the_connection_closes(server: Server, path: str) -> None:
    """100 bytes every 0.1 s (1 KB/s) of a 100 kB body: /predict, which reads
    the body, answers 408 naming it once BODY_TIMEOUT_SECONDS have passed;
    /health, which takes no body, answers at the same deadline with
    `Connection: close`. Either way the connection is closed, not held."""
    method = "POST" if path.endswith("predict") else "GET"
    with socket.create_connection(_address(server), timeout=30) as raw:
        started = time.monotonic()
        raw.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"X-API-Key: {KEY}\r\nContent-Length: 100000\r\n\r\n".encode()
        )
        raw.setblocking(False)
        answer = b""
        while b"\r\n\r\n" not in answer and time.monotonic() - started < BODY_TIMEOUT + 10:
            try:
                raw.sendall(b" " * 100)
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.1)
            with suppress(BlockingIOError):
                answer += raw.recv(65536)
        waited = time.monotonic() - started
        raw.setblocking(True)
        head, rest = answer.partition(b"\r\n\r\n")[::2]
        head = head.lower()
        assert b"connection: close" in head, answer[:500]
        assert BODY_TIMEOUT - 0.5 <= waited <= BODY_TIMEOUT + 5, waited
        if method == "POST":
            assert head.startswith(b"http/1.1 408"), head
            while len(rest) < int(head.split(b"content-length: ")[1].split(b"\r\n")[0]):
                rest += raw.recv(65536)
            [error] = json.loads(rest)["errors"]
            assert error["field"] == "body"
            assert f"within {BODY_TIMEOUT:g} seconds" in error["message"]
        else:
            assert head.startswith(b"http/1.1 200"), head
        assert _closed_within(raw, 10)
