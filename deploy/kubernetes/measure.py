"""Measure what one API pod needs: resident memory and CPU of one worker.

Runs ``python -m api`` with one worker (as the Deployment does, with metrics
and the prediction log on) on a loopback port and prints, as JSON:

- the seconds from starting the process to the first 200 from ``/api/v1/ready``;
- resident memory (``VmRSS``) once ready and idle;
- server CPU per request and ``VmRSS`` after sustained load of one house per
  request over several keep-alive connections;
- ``VmRSS`` and the peak (``VmHWM``) after requests of the largest size the
  API accepts (``MAX_ROWS`` houses, the whole body under ``MAX_BODY_BYTES``),
  one at a time and then several at once;
- the size of the prometheus multi-process directory (an emptyDir in the pod).

The requests and limits in ``base/deployment.yaml`` are derived from these
figures as ``README.md`` (in this folder) explains. Usage, from the source tree
with the API's requirements installed and a trained model::

    python deploy/kubernetes/measure.py [--seconds 20] [--connections 8]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere in the tree
    sys.path.insert(0, str(ROOT))

from api.app.core.settings import Settings  # noqa: E402
from api.app.examples import example_houses  # noqa: E402
from api.tests.helpers import run_load, running_server  # noqa: E402
from testkit import cpu_seconds, status_kib  # noqa: E402

MIB = 1024 * 1024


def directory_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def largest_body(rows: int, limit_bytes: int) -> bytes:
    """``rows`` real houses (test.csv, repeated), as one request body."""
    houses = list(itertools.islice(itertools.cycle(example_houses(count=rows)), rows))
    body = json.dumps({"inputs": houses}).encode()
    if len(body) > limit_bytes:
        raise SystemExit(f"{rows} houses make {len(body)} bytes, over MAX_BODY_BYTES")
    return body


def post_all(url: str, body: bytes, count: int) -> None:
    """``count`` requests with ``body`` at the same time; each must be priced."""
    errors: list[str] = []

    def send() -> None:
        response = httpx.post(
            url + "/api/v1/predict",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        if response.status_code != 200:
            errors.append(f"{response.status_code}: {response.text[:200]}")

    threads = [threading.Thread(target=send) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    if errors:
        raise SystemExit(f"largest requests failed: {errors}")


def measure(seconds: float, connections: int, concurrent_largest: int) -> dict[str, Any]:
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="k8s-measure-") as tmp:
        work = Path(tmp)
        metrics_dir = work / "metrics"
        env = {
            "WEB_CONCURRENCY": "1",
            "METRICS": "true",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "PREDICTION_LOG_PATH": str(work / "predictions.sqlite3"),
            "PREDICTION_LOG_SPOOL_DIR": str(work / "spool"),
        }
        started = time.monotonic()
        with running_server(work / "server.log", workers=1, env=env) as server:
            ready_seconds = time.monotonic() - started
            pid = server.process.pid  # one worker: uvicorn serves in this process
            time.sleep(2)  # let the model load's garbage settle
            idle = status_kib(pid, "VmRSS")

            cpu_before = cpu_seconds(pid)
            load = run_load(server.url, connections=connections, seconds=seconds)
            cpu_load = cpu_seconds(pid) - cpu_before
            if load.failures:
                raise SystemExit(f"{load.failures} of {load.requests} requests failed")
            answered = load.requests - load.failures
            after_load = status_kib(pid, "VmRSS")

            body = largest_body(settings.max_rows, settings.max_body_bytes)
            cpu_before = cpu_seconds(pid)
            for _ in range(5):
                post_all(server.url, body, 1)
            cpu_largest = (cpu_seconds(pid) - cpu_before) / 5
            after_largest = status_kib(pid, "VmRSS")
            peak_one_at_a_time = status_kib(pid, "VmHWM")
            post_all(server.url, body, concurrent_largest)
            after_concurrent = status_kib(pid, "VmRSS")
            peak = status_kib(pid, "VmHWM")
            metrics_bytes = directory_bytes(metrics_dir)

    def mib(kib: int) -> float:
        return round(kib / 1024, 1)

    return {
        "workers": 1,
        "start_to_ready_seconds": round(ready_seconds, 2),
        "idle_rss_mib": mib(idle),
        "load": {
            "seconds": seconds,
            "connections": connections,
            "houses_per_request": 1,
            "requests": answered,
            "server_cpu_seconds": round(cpu_load, 2),
            "cpu_ms_per_request": round(1000 * cpu_load / answered, 3),
        },
        "after_load_rss_mib": mib(after_load),
        "largest_request": {
            "houses": settings.max_rows,
            "body_bytes": len(body),
            "cpu_ms_per_request": round(1000 * cpu_largest, 1),
            "after_rss_mib": mib(after_largest),
            "peak_rss_mib": mib(peak_one_at_a_time),
            "concurrent": concurrent_largest,
            "after_concurrent_rss_mib": mib(after_concurrent),
            "peak_concurrent_rss_mib": mib(peak),
        },
        "metrics_dir_mib": round(metrics_bytes / MIB, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    parser.add_argument(
        "--concurrent-largest", type=int, default=4, help="largest requests sent at once"
    )
    args = parser.parse_args()
    print(json.dumps(measure(args.seconds, args.connections, args.concurrent_largest), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
