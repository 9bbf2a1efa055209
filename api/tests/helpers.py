"""Helpers for tests that talk to a real server: ``python -m api`` started
as a subprocess (through :mod:`testkit`), waiting for readiness, stopping it,
and keep-alive load that tallies which worker answered."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

import api
from api.app.examples import example_houses
from testkit import processes
from testkit.processes import Server, env_with_path, serving

#: The directory that holds the ``api`` package (a source checkout's root).
API_PARENT = Path(api.__file__).resolve().parent.parent
READY_PATH = processes.READY_PATH


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


def server_env(**extra: str) -> dict[str, str]:
    """The environment for ``python -m api`` from this checkout (or the release
    rehearsal's copy of ``api``), plus ``extra``."""
    return env_with_path(API_PARENT, **extra)


@contextmanager
def running_server(
    log: Path, *, workers: int = 1, env: dict[str, str] | None = None, timeout: float = 60.0
) -> Iterator[Server]:
    """``python -m api`` on a free loopback port, ready; stopped with SIGTERM after."""
    with serving(
        [sys.executable, "-m", "api"], log, workers=workers, env=server_env(**(env or {})),
        cwd=API_PARENT, timeout_s=timeout,
    ) as server:  # fmt: skip
        yield server


def stop(process: subprocess.Popen[bytes], timeout: float = processes.STOP_TIMEOUT_S) -> int:
    """SIGTERM, then wait; a server that needs SIGKILL fails the test."""
    code = processes.stop(process, timeout)
    if code is None:
        raise AssertionError(f"server ignored SIGTERM for {timeout} s")
    return code


@dataclass
class LoadReport:
    seconds: float
    requests: int = 0
    failures: int = 0
    per_worker: Counter[str] = field(default_factory=Counter)
    #: Per failure, the worker that last answered on that connection (None: none had).
    failed_after: list[str | None] = field(default_factory=list)


def run_load(url: str, *, connections: int, seconds: float, ramp: float = 0.05) -> LoadReport:
    """POST one house over ``connections`` keep-alive connections (one
    ``httpx.Client`` per thread), opened one every ``ramp`` seconds as a load
    balancer would, until ``seconds`` have passed; counts the answers per
    worker (``X-Worker-PID``). Throughput is measured by ``tox -e bench``."""
    assert url.startswith("http://127.0.0.1:"), "loopback only"
    payload = json.dumps({"inputs": [example_houses()[0]]}).encode()
    headers = {"Content-Type": "application/json"}
    report = LoadReport(seconds=seconds)
    lock = threading.Lock()
    start = threading.Barrier(connections + 1)

    def worker(position: int) -> None:
        pids: Counter[str] = Counter()
        requests = failures = 0
        failed_after: list[str | None] = []
        last_pid: str | None = None
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(base_url=url, timeout=30, limits=limits) as client:
            start.wait()
            deadline = time.monotonic() + seconds
            time.sleep(position * ramp)
            while time.monotonic() < deadline:
                requests += 1
                try:
                    response = client.post("/api/v1/predict", content=payload, headers=headers)
                except httpx.TransportError:
                    failures += 1
                    failed_after.append(last_pid)
                    last_pid = None  # the next request opens a new connection
                    continue
                last_pid = response.headers.get("X-Worker-PID", "?")
                if response.status_code == 200:
                    pids[last_pid] += 1
                else:
                    failures += 1
                    failed_after.append(last_pid)
        with lock:
            report.failed_after.extend(failed_after)
            report.per_worker.update(pids)
            report.requests += requests
            report.failures += failures

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(connections)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join(seconds + 60)
    return report
