"""Helpers for tests that talk to a real server: free ports, starting
``python -m api`` as a subprocess, waiting for readiness, stopping it, and
keep-alive load that tallies which worker answered."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

import api
from api.app.examples import example_houses

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


#: wrk's Lua script: POST the body, print one line of results at the end.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{body}]]
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d %d %.3f\\n", summary.requests,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(99) / 1000))
end
"""


def pinned(cpu: int) -> list[str]:
    """``taskset -c cpu`` when there are two CPUs or more (server on one, wrk on the other)."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


def wrk(
    url: str, script: Path, connections: int, seconds: float, *, pin: bool = True
) -> dict[str, Any]:
    """``wrk`` (Debian package) posting the script's body for ``seconds``: requests,
    errors (socket errors and non-2xx answers) and the 99th latency percentile."""
    assert url.startswith("http://127.0.0.1:"), "loopback only"
    done = subprocess.run(
        [
            *(pinned(1) if pin else []),
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{int(seconds)}s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    match = re.search(r"^RESULT (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed:\n{done.stdout}\n{done.stderr}")
    requests, connect, read, write, status, timeout, p99 = match.group(1).split()
    return {
        "requests": int(requests),
        "requests_per_second": int(requests) / seconds,
        "errors": int(connect) + int(read) + int(write) + int(status) + int(timeout),
        "p99_ms": float(p99),
    }
