"""Single-request latency: ``--requests`` sequential POSTs of one house over
one keep-alive connection, after a warm-up; prints median, p95, max.

    python -m api.benchmarks.latency --url http://127.0.0.1:8001 --requests 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx

from api.app.examples import example_houses
from api.benchmarks.load_test import check_loopback

WARM_UP = 20


def measure(
    url: str, requests: int = 200, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    check_loopback(url)
    payload = json.dumps({"inputs": [example_houses()[0]]}).encode()
    request_headers = {"Content-Type": "application/json", **(headers or {})}
    timings: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for index in range(WARM_UP + requests):
            began = time.perf_counter()
            response = client.post("/api/v1/predict", content=payload, headers=request_headers)
            elapsed = (time.perf_counter() - began) * 1000
            response.raise_for_status()
            if index >= WARM_UP:
                timings.append(elapsed)
    ordered = sorted(timings)
    return {
        "requests": requests,
        "median_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
        "max_ms": round(ordered[-1], 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8001")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.url, args.requests), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
