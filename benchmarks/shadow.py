"""What does a shadow challenger cost? API throughput with and without one, side by side.

Starts ``python -m api`` (one worker, loopback, the SQLite prediction log
on) as ``log``, and the same with ``CHALLENGER_MODEL_DIR`` as ``shadow``,
and drives each with ``wrk`` (16 keep-alive connections) for ``--seconds``
after a warm-up, with bodies of 1 and of 100 houses; the server runs on CPU 0
and wrk on CPU 1 (``taskset``). The two alternate for ``--rounds`` rounds,
back to back, so a machine shared with other jobs slows them alike. The
challenger is the package's own artifact loaded from its directory: a
challenger is a model of the same shape, so it costs what any would.

Reported: requests per second of each, ``shadow / log`` (issue 19's target:
at least 0.85, shadowing costs at most 15 % of throughput), the server's CPU
time per request, and the share of the logged houses that got a shadow price
(the rest were dropped when the challenger's queue was full: shadowing
yields under saturation rather than slow the answers).

    python -m benchmarks.shadow --rounds 3 --seconds 5

Run by ``python -m benchmarks`` (``tox -e bench``) too. Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.data import request_body
from benchmarks.servers import ROOT
from regression_model import load_model
from testkit import SUMMARY_SCRIPT, cpu_seconds, env_with_path, pinned, serving, wrk_summary

CONFIGURATIONS = ("log", "shadow")
#: Issue 19: shadowing costs at most this share of the throughput.
MAX_LOSS = 0.15


def _count(database: Path, table: str) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def measure(
    name: str,
    houses: int,
    directory: Path,
    connections: int,
    seconds: float,
    *,
    pin: bool,
    label: str,
) -> dict[str, Any]:
    """One server of configuration ``name``, loaded with ``houses``-house bodies."""
    script = directory / f"post-{houses}.lua"
    if not script.exists():
        script.write_text(SUMMARY_SCRIPT.format(body=request_body(houses).decode()))
    database = directory / f"{label}.sqlite3"
    env = {"PREDICTION_LOG_PATH": str(database)}
    if name == "shadow":
        env["CHALLENGER_MODEL_DIR"] = str(load_model().directory)
    command = [*(pinned(0) if pin else []), sys.executable, "-m", "api"]
    with serving(
        command, directory / f"{label}.log", name=label, env=env_with_path(ROOT, **env), cwd=ROOT
    ) as server:
        url = server.url + "/api/v1/predict"
        wrk_summary(url, script, connections, 1, pin=pin)  # warm-up
        cpu_before = cpu_seconds(server.process.pid)
        result = wrk_summary(url, script, connections, seconds, pin=pin)
        cpu = cpu_seconds(server.process.pid) - cpu_before
    result["cpu_us_per_request"] = cpu / max(result["requests"], 1) * 1e6
    if name == "shadow":  # after the server stopped: what it logged and shadowed, all written
        result["shadowed_share"] = _count(database, "shadow_prices") / max(
            _count(database, "predictions"), 1
        )
    return result


def run(
    rounds: int,
    seconds: float,
    connections: int,
    bodies: Sequence[int] = (1, 100),
    pin: bool = True,
) -> dict[str, Any]:
    """Both configurations, alternating, ``rounds`` times per body size."""
    runs: dict[int, dict[str, list[dict[str, Any]]]] = {
        houses: {name: [] for name in CONFIGURATIONS} for houses in bodies
    }
    with tempfile.TemporaryDirectory(prefix="shadow-bench-") as temporary:
        directory = Path(temporary)
        for round_ in range(rounds):
            for houses in bodies:
                for name in CONFIGURATIONS:
                    label = f"{name}-{houses}-{round_}"
                    measured = measure(
                        name, houses, directory, connections, seconds, pin=pin, label=label
                    )
                    runs[houses][name].append(measured)
    summary = []
    for houses, by_name in runs.items():
        rps = {
            name: statistics.median(r["requests_per_second"] for r in by_name[name])
            for name in CONFIGURATIONS
        }
        cpu = {
            name: statistics.median(r["cpu_us_per_request"] for r in by_name[name])
            for name in CONFIGURATIONS
        }
        summary.append(
            {
                "houses": houses,
                "log_requests_per_s": round(rps["log"], 1),
                "shadow_requests_per_s": round(rps["shadow"], 1),
                "shadow_over_log": round(rps["shadow"] / rps["log"], 3) if rps["log"] else None,
                "rounds_shadow_over_log": [
                    round(s["requests_per_second"] / max(log["requests_per_second"], 1e-9), 3)
                    for s, log in zip(by_name["shadow"], by_name["log"], strict=True)
                ],
                "log_cpu_us_per_request": round(cpu["log"], 1),
                "shadow_cpu_us_per_request": round(cpu["shadow"], 1),
                "shadowed_share": round(
                    statistics.median(r["shadowed_share"] for r in by_name["shadow"]), 3
                ),
                "errors": sum(r["errors"] for name in CONFIGURATIONS for r in by_name[name]),
            }
        )
    return {
        "connections": connections,
        "seconds": seconds,
        "rounds": rounds,
        "pinned": pin,
        "max_loss": MAX_LOSS,
        "summary": summary,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--unpinned", action="store_true", help="let the kernel place the server and wrk"
    )
    args = parser.parse_args(argv)
    report = run(args.rounds, min(args.seconds, 60.0), args.connections, pin=not args.unpinned)
    print(json.dumps(report, indent=2))
    return 0 if not any(row["errors"] for row in report["summary"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
