"""Over-limit bodies from Python's standard library: the client gets the 413
and its message, not a reset connection.

The server reads and discards the rest of an over-limit body (up to
``MAX_DRAIN_BYTES``) before answering, so a client still sending when the
answer comes gets to read it. Before, ``urllib`` raised
``ConnectionResetError`` here while curl saw the 413.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from api.tests.helpers import running_server
from testkit import Server

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("limit") / "server.log"
    with running_server(log, env={"MAX_BODY_BYTES": str(LIMIT)}) as running:
        yield running


def _big_body(size: int) -> bytes:
    house = json.dumps({"Neighborhood": "NAmes", "GrLivArea": 1500})
    count = size // (len(house) + 1) + 1
    return ('{"inputs": [' + ",".join([house] * count) + "]}").encode()


@pytest.mark.parametrize("size", [LIMIT + 1, 2 * 1024 * 1024, 16 * 1024 * 1024])
def test_urllib_gets_the_413_and_its_message(server: Server, size: int) -> None:
    body = _big_body(size)
    request = urllib.request.Request(
        f"{server.url}/api/v1/predict",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 413
    answer = json.loads(caught.value.read())
    assert answer["errors"][0]["field"] == "body"
    assert f"larger than {LIMIT} bytes" in answer["errors"][0]["message"]


def test_http_client_chunked_upload_gets_the_413_and_keeps_the_connection(
    server: Server,
) -> None:
    """A chunked body (no Content-Length) over the limit: the whole body is read,
    so the connection stays usable for the next request."""
    parts = urlsplit(server.url)
    assert parts.hostname is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    chunks = (_big_body(LIMIT * 4)[i : i + 8192] for i in range(0, LIMIT * 4, 8192))
    connection.request(
        "POST",
        "/api/v1/predict",
        body=chunks,
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["errors"][0]["field"] == "body"
    assert response.getheader("Connection") is None  # keep-alive
    connection.request("GET", "/api/v1/health")
    follow_up = connection.getresponse()
    assert follow_up.status == 200
    follow_up.read()
    connection.close()


def test_a_client_waiting_for_100_continue_is_answered_without_sending(server: Server) -> None:
    parts = urlsplit(server.url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as raw:
        raw.sendall(
            b"POST /api/v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000\r\nExpect: 100-continue\r\n\r\n"
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += raw.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"100 Continue" not in answer


def test_a_body_beyond_the_drain_bound_is_refused_and_the_connection_closed(
    tmp_path: Path,
) -> None:
    """Past MAX_DRAIN_BYTES the server stops reading: it answers 413 with
    `Connection: close` (a client still sending may then see the reset)."""
    env = {"MAX_BODY_BYTES": str(LIMIT), "MAX_DRAIN_BYTES": str(LIMIT * 2)}
    with running_server(tmp_path / "server.log", env=env) as bounded:
        parts = urlsplit(bounded.url)
        assert parts.hostname is not None and parts.port is not None
        with socket.create_connection((parts.hostname, parts.port), timeout=30) as raw:
            raw.sendall(
                b"POST /api/v1/predict HTTP/1.1\r\nHost: test\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
            )
            raw.sendall(b"x" * (LIMIT * 3))  # past the bound; the rest is never sent
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += raw.recv(65536)
    head = answer.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 413")
    assert b"connection: close" in head
