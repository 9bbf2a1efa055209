"""What do metrics and the prediction log cost? Throughput with and without them.

Starts ``python -m api`` (one worker, loopback) in each configuration in
turn — ``bare`` (``METRICS=false``, no log), ``metrics`` (metrics, no log),
``full`` (metrics and the SQLite prediction log) — and drives each with
``wrk`` (16 keep-alive connections, one house per request) for ``--seconds``
after a warm-up; the server runs on CPU 0 and wrk on CPU 1 (``taskset``).
The configurations alternate for ``--rounds`` rounds, back to back, so a
machine shared with other jobs slows them alike; the report gives each round
and the median, the errors, and the records the log wrote.

    python -m benchmarks.overhead --rounds 5 --seconds 8

Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from api.app.examples import example_houses
from benchmarks.servers import ROOT
from testkit import SUMMARY_SCRIPT, cpu_seconds, env_with_path, pinned, serving, wrk_summary

CONFIGURATIONS: dict[str, dict[str, str]] = {
    "bare": {"METRICS": "false"},
    "metrics": {"METRICS": "true"},
    "full": {"METRICS": "true", "PREDICTION_LOG_PATH": "{dir}/predictions.sqlite3"},
}


def measure(
    name: str, directory: Path, script: Path, connections: int, seconds: float, *, pin: bool
) -> dict[str, Any]:
    env = {k: v.format(dir=directory) for k, v in CONFIGURATIONS[name].items()}
    command = [*(pinned(0) if pin else []), sys.executable, "-m", "api"]
    with serving(
        command, directory / f"{name}.log", name=name, env=env_with_path(ROOT, **env), cwd=ROOT
    ) as server:
        url = server.url + "/api/v1/predict"
        wrk_summary(url, script, connections, 2, pin=pin)  # warm-up
        cpu_before = cpu_seconds(server.process.pid)
        result = wrk_summary(url, script, connections, seconds, pin=pin)
        cpu = cpu_seconds(server.process.pid) - cpu_before
        result["cpu_us_per_request"] = cpu / max(result["requests"], 1) * 1e6
    return result


def run(rounds: int, seconds: float, connections: int, pin: bool = True) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    body = json.dumps({"inputs": [example_houses()[0]]})
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGURATIONS}
    with tempfile.TemporaryDirectory(prefix="overhead-") as temporary:
        directory = Path(temporary)
        script = directory / "post.lua"
        script.write_text(SUMMARY_SCRIPT.format(body=body))
        for _ in range(rounds):
            for name in CONFIGURATIONS:
                results[name].append(
                    measure(name, directory, script, connections, seconds, pin=pin)
                )
        database = directory / "predictions.sqlite3"
        with sqlite3.connect(database) as connection:
            logged = connection.execute("SELECT count(*) FROM predictions").fetchone()[0]
    answered = sum(r["requests"] for r in results["full"])
    cpu = {
        name: statistics.median(r["cpu_us_per_request"] for r in runs)
        for name, runs in results.items()
    }
    medians = {
        name: statistics.median(r["requests_per_second"] for r in runs)
        for name, runs in results.items()
    }
    return {
        "connections": connections,
        "seconds": seconds,
        "pinned": pin,
        "rounds": rounds,
        "requests_per_second": {
            name: [round(r["requests_per_second"], 1) for r in runs]
            for name, runs in results.items()
        },
        "median_requests_per_second": {k: round(v, 1) for k, v in medians.items()},
        "loss_vs_bare": {
            name: round(1 - medians[name] / medians["bare"], 3) for name in ("metrics", "full")
        },
        "cpu_us_per_request": {
            name: [round(r["cpu_us_per_request"], 1) for r in runs]
            for name, runs in results.items()
        },
        "median_cpu_us_per_request": {k: round(v, 1) for k, v in cpu.items()},
        "capacity_loss_vs_bare": {
            name: round(1 - cpu["bare"] / cpu[name], 3) for name in ("metrics", "full")
        },
        "errors": {name: sum(r["errors"] for r in runs) for name, runs in results.items()},
        "p99_ms": {name: [r["p99_ms"] for r in runs] for name, runs in results.items()},
        # wrk counts requests answered; the log holds every house of them
        # (plus the warm-ups', which wrk does not report: at least as many).
        "full_requests_measured": answered,
        "full_records_logged_including_warmups": logged,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--unpinned", action="store_true", help="let the kernel place the server and wrk"
    )
    args = parser.parse_args(argv)
    report = run(args.rounds, min(args.seconds, 60.0), args.connections, pin=not args.unpinned)
    print(json.dumps(report, indent=2))
    return 0 if not any(report["errors"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
