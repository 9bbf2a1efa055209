"""Keep-alive load test: do all workers share the load?

Opens ``--connections`` persistent HTTP connections (one ``httpx.Client`` per
thread, so each keeps its connection alive), one every ``--ramp`` seconds as a
load balancer or load generator would, and has each POST one house in a loop
until ``--seconds`` have passed since the start. Every response names the worker that served it
(``X-Worker-PID``); the report counts requests per worker, throughput and
latency percentiles.

    python -m api.benchmarks.load_test --url http://127.0.0.1:8001 --seconds 5

Only loopback URLs are accepted: this is a bounded test, not a tool to point
at other machines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from api.app.examples import example_houses

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
MAX_SECONDS = 60.0


@dataclass
class LoadReport:
    seconds: float
    requests: int = 0
    failures: int = 0
    per_worker: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    #: Per failure, the worker that last answered on that connection (None: none had).
    failed_after: list[str | None] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "failures": self.failures,
            "requests_per_second": round(self.throughput, 1),
            "latency_ms": {
                "median": round(statistics.median(self.latencies_ms), 2)
                if self.latencies_ms
                else None,
                "p95": round(self.percentile(0.95), 2),
                "max": round(max(self.latencies_ms, default=0.0), 2),
            },
            "requests_per_worker_pid": dict(sorted(self.per_worker.items())),
        }


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"refusing to load-test {host!r}: only loopback addresses are allowed")


def run_load(
    url: str,
    *,
    connections: int = 8,
    seconds: float = 5.0,
    ramp: float = 0.05,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> LoadReport:
    """POST ``body`` over ``connections`` keep-alive connections for ``seconds``."""
    check_loopback(url)
    seconds = min(seconds, MAX_SECONDS)
    payload = json.dumps(body or {"inputs": [example_houses()[0]]}).encode()
    request_headers = {"Content-Type": "application/json", **(headers or {})}
    report = LoadReport(seconds=seconds)
    lock = threading.Lock()
    start = threading.Barrier(connections + 1)

    def worker(position: int) -> None:
        pids: Counter[str] = Counter()
        latencies: list[float] = []
        failures = 0
        failed_after: list[str | None] = []
        last_pid: str | None = None
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(base_url=url, timeout=30, limits=limits) as client:
            start.wait()
            deadline = time.monotonic() + seconds
            time.sleep(position * ramp)
            while time.monotonic() < deadline:
                began = time.perf_counter()
                try:
                    response = client.post(
                        "/api/v1/predict", content=payload, headers=request_headers
                    )
                except httpx.TransportError:
                    failures += 1
                    failed_after.append(last_pid)
                    last_pid = None  # the next request opens a new connection
                    continue
                latencies.append((time.perf_counter() - began) * 1000)
                last_pid = response.headers.get("X-Worker-PID", "?")
                if response.status_code == 200:
                    pids[last_pid] += 1
                else:
                    failures += 1
                    failed_after.append(last_pid)
        with lock:
            report.per_worker.update(pids)
            report.latencies_ms.extend(latencies)
            report.failures += failures
            report.failed_after.extend(failed_after)
            report.requests += len(latencies)

    threads = [
        threading.Thread(target=worker, args=(position,), daemon=True)
        for position in range(connections)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join(seconds + 60)
    report.seconds = time.monotonic() - began
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8001")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--ramp", type=float, default=0.05, help="seconds between new connections")
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args(argv)
    headers = {"X-API-Key": args.api_key} if args.api_key else None
    report = run_load(
        args.url,
        connections=args.connections,
        seconds=args.seconds,
        ramp=args.ramp,
        headers=headers,
    )
    print(json.dumps(report.summary(), indent=2))
    return 0 if report.requests and not report.failures else 1


if __name__ == "__main__":
    sys.exit(main())
