"""Helpers for tests that talk to a real server: free ports, starting
``python -m api`` as a subprocess, waiting for readiness, stopping it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

import api

#: The directory that holds the ``api`` package (a source checkout's root).
API_PARENT = Path(api.__file__).resolve().parent.parent
READY_PATH = "/api/v1/ready"


class _Getter(Protocol):
    def get(self, url: str) -> httpx.Response: ...


def wait_until_ready(client: _Getter, timeout: float = 60.0) -> float:
    """Poll /api/v1/ready until 200; returns the seconds waited."""
    started = time.monotonic()
    while True:
        try:
            if client.get(READY_PATH).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not ready after {timeout} s")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def server_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(API_PARENT), env.get("PYTHONPATH", "")) if p
    )
    env.update(extra)
    return env


@contextmanager
def running_server(
    log: Path, *, workers: int = 1, env: dict[str, str] | None = None, timeout: float = 60.0
) -> Iterator[Server]:
    """``python -m api`` on a free loopback port, ready; stopped with SIGTERM after."""
    port = free_port()
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "api", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers)],
        cwd=API_PARENT, env=server_env(**(env or {})), stdout=handle, stderr=subprocess.STDOUT,
    )  # fmt: skip
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        ready_workers: set[str] = set()
        deadline = time.monotonic() + timeout
        # Every worker loads its own model: wait until each one has answered
        # /ready with 200 (a new connection per probe reaches any worker).
        while len(ready_workers) < workers:
            if process.poll() is not None:
                raise AssertionError(f"server exited early:\n{server.output()[-3000:]}")
            try:
                probe = httpx.get(server.url + READY_PATH, timeout=5)
                if probe.status_code == 200:
                    ready_workers.add(probe.headers["X-Worker-PID"])
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready in {timeout} s:\n{server.output()}")
            time.sleep(0.05)
        yield server
    finally:
        stop(process)
        handle.close()


def stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM, then wait; a server that needs SIGKILL fails the test."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"server ignored SIGTERM for {timeout} s") from None
    return int(process.returncode)
