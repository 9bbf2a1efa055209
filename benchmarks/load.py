"""The API under load: ``wrk`` (Debian package ``wrk``) with a Lua script that
posts a JSON body, tallies the answering worker and counts non-2xx answers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from testkit.wrk import run_wrk as _run

SCRIPT = Path(__file__).with_name("wrk_report.lua")
MARK = "BENCH_WRK_JSON "


def find_wrk(explicit: str | None = None) -> str | None:
    """The wrk executable: ``explicit`` if given (and it exists), else from PATH."""
    if explicit is not None:
        return explicit if Path(explicit).is_file() and os.access(explicit, os.X_OK) else None
    return shutil.which("wrk")


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True)
    lines = (done.stdout or done.stderr).splitlines()
    return lines[0].strip() if lines else ""


def run_wrk(
    wrk: str,
    url: str,
    body_file: Path,
    *,
    connections: int,
    seconds: float,
    threads: int = 1,
) -> dict[str, Any]:
    """POST the body in ``body_file`` to ``url`` + /api/v1/predict over
    ``connections`` keep-alive connections for ``seconds``; loopback only."""
    line = _run(
        url + "/api/v1/predict", SCRIPT, mark=MARK, connections=connections, seconds=seconds,
        threads=threads, executable=wrk, env={**os.environ, "BENCH_BODY_FILE": str(body_file)},
        request_timeout_s=30,
    )  # fmt: skip
    raw: dict[str, Any] = json.loads(line)
    duration_s = raw["duration_us"] / 1e6
    percentiles = raw["latency_us"]["percentiles"]
    return {
        "connections": connections,
        "threads": threads,
        "seconds": duration_s,
        "requests": raw["requests"],
        "requests_per_s": raw["requests"] / duration_s,
        "latency_ms": {
            "mean": raw["latency_us"]["mean"] / 1000,
            **{f"p{key}": value / 1000 for key, value in percentiles.items()},
            "max": raw["latency_us"]["max"] / 1000,
        },
        "not_2xx": raw["not_2xx"],
        "socket_errors": raw["errors"],
        "requests_per_worker": raw["per_worker"],
    }
