"""``python -m benchmarks`` (``tox -e bench``): every benchmark in one run.

    python -m benchmarks            # the full run, a few minutes on 2 cores
    python -m benchmarks --smoke    # the short version CI runs (well under 2 minutes)

Prints the tables and writes ``bench.json`` and ``bench.png`` to ``--output``
(default ``benchmarks/results/``). Figures are reported, never asserted: the
exit status says only whether the run completed. Without ``wrk`` the load
tests are skipped with a message, or the run fails at once when
``REQUIRE_BENCH=1``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import inprocess, load, report, servers, shadow
from benchmarks.data import SEED, request_body
from regression_model import ENGINES
from testkit import Server

RESULTS = Path(__file__).resolve().parent / "results"
STARTED = time.monotonic()
LIBRARIES = (
    "numpy",
    "pandas",
    "scikit-learn",
    "feature-engine",
    "pydantic",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "matplotlib",
)


@dataclass(frozen=True)
class Plan:
    """What one run measures; the smoke version is the same code on less."""

    sizes: tuple[int, ...]
    #: Batches this large or larger run in a child process per engine, which
    #: also reports peak memory.
    child_from: int
    #: Most timed calls per (engine, size) in this process, and the time after
    #: which a block stops (having made at least 3 calls).
    max_repeats: dict[int, int]
    budget_s: float
    #: Timed calls in each child: the pipeline at a million houses takes about a minute.
    child_repeats: dict[str, int]
    wrk_seconds: float
    warm_up_requests: int
    #: Extra start-to-ready measurements per app (1 worker), on top of the load runs'.
    extra_cold_starts: int
    workers: tuple[int, ...] = (1, 2)
    bodies: tuple[int, ...] = (1, 100)
    #: Rounds of the shadow challenger's cost (with and without, alternating).
    shadow_rounds: int = 3
    notes: list[str] = field(default_factory=list)


FULL = Plan(
    sizes=(1, 100, 10_000, 1_000_000),
    child_from=1_000_000,
    max_repeats={1: 200, 100: 100, 10_000: 10},
    budget_s=10.0,
    child_repeats={"tables": 3, "pipeline": 1},
    wrk_seconds=5.0,
    warm_up_requests=10,
    extra_cold_starts=2,
)
SMOKE = Plan(
    sizes=(1, 100, 1_000),
    child_from=1_000,
    max_repeats={1: 20, 100: 5},
    budget_s=1.0,
    child_repeats={"tables": 1, "pipeline": 1},
    wrk_seconds=1.0,
    warm_up_requests=2,
    extra_cold_starts=0,
    shadow_rounds=1,
)


def say(message: str) -> None:
    """Progress, with the seconds since the run started."""
    print(f"[{time.monotonic() - STARTED:6.1f} s] {message}", flush=True)


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        memory_gb: float | None = round(int(memory) * 1024 / 1e9, 1)
    except OSError:
        memory_gb = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _git_commit() -> str | None:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=servers.ROOT
    )
    return done.stdout.strip() if done.returncode == 0 else None


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def measure_in_process(plan: Plan) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    memory: list[dict[str, Any]] = []
    for rows in plan.sizes:
        for engine in ENGINES:
            say(f"make_prediction: {engine}, {rows:,} rows")
            if rows >= plan.child_from:
                measured = inprocess.measure_in_child(
                    engine, rows, repeats=plan.child_repeats[engine], timeout_s=900
                )
                kept = ("engine", "rows", "peak_rss_mb", "peak_rss_before_predicting_mb")
                memory.append({key: measured[key] for key in kept})
            else:
                measured = inprocess.measure_in_parent(
                    engine, rows, max_repeats=plan.max_repeats[rows], budget_s=plan.budget_s
                )
            runs.append(measured)
    default = ENGINES[0]
    say(f"make_prediction: {default}, one house as a dict")
    runs.append(
        inprocess.measure_dict(default, max_repeats=plan.max_repeats[1], budget_s=plan.budget_s)
    )
    return {
        "engines": list(ENGINES),
        "seed": SEED,
        "runs": runs,
        "peak_memory": memory,
    }


def _cold_start(server: Server) -> dict[str, Any]:
    return {
        "app": server.name,
        "workers": server.workers,
        "first_ready_s": server.first_ready_s,
        "all_ready_s": server.all_ready_s,
    }


def _serve_and_load(
    app: str,
    workers: int,
    *,
    bodies: dict[int, Path],
    plan: Plan,
    wrk: str | None,
    connections: int,
    log: Path,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Start ``app``, warm it up, load it with each body, read its memory:
    (cold start, load runs, memory)."""
    say(f"HTTP: {app}, {workers} worker(s)")
    runs = []
    with servers.running(app, workers, log) as server:
        cold = _cold_start(server)
        servers.warm_up(
            server, [body.read_bytes() for body in bodies.values()], plan.warm_up_requests
        )
        servers.wait_until_idle(server)
        # Under load, then (1 worker) one house at a time over one connection:
        # the latency of a single request on an otherwise idle server.
        loads = [(houses, connections) for houses in bodies]
        if workers == 1:
            loads.append((min(bodies), 1))
        for houses, clients in loads:
            if wrk is None:
                break
            result = load.run_wrk(
                wrk, server.url, bodies[houses], connections=clients, seconds=plan.wrk_seconds
            )
            # wrk leaves its last requests unanswered; the server still works on them.
            idle_after_s = servers.wait_until_idle(server)
            runs.append(
                {
                    "app": app,
                    "workers": workers,
                    "houses": houses,
                    **result,
                    "houses_per_s": result["requests_per_s"] * houses,
                    "idle_after_s": idle_after_s,
                }
            )
        memory = {"app": app, "workers": workers, **servers.memory(server)}
    return cold, runs, memory


def measure_api(plan: Plan, wrk: str | None, connections: int) -> dict[str, Any]:
    notes: list[str] = []
    if wrk is None:
        notes.append("wrk not found: load tests skipped (cold start and memory still measured)")
    load_runs: list[dict[str, Any]] = []
    cold: list[dict[str, Any]] = []
    memory: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        directory = Path(scratch)
        bodies = {houses: directory / f"body-{houses}.json" for houses in plan.bodies}
        for houses, path in bodies.items():
            path.write_bytes(request_body(houses))
        for workers in plan.workers:
            for app in ("bare", "api"):
                started, runs, used = _serve_and_load(
                    app,
                    workers,
                    bodies=bodies,
                    plan=plan,
                    wrk=wrk,
                    connections=connections,
                    log=directory / f"{app}-{workers}.log",
                )
                cold.append(started)
                load_runs.extend(runs)
                memory.append(used)
        for app in ("bare", "api"):
            for attempt in range(plan.extra_cold_starts):
                say(f"cold start: {app}, again ({attempt + 1})")
                with servers.running(app, 1, directory / f"{app}-cold.log") as server:
                    cold.append(_cold_start(server))
    return {
        "connections": connections,
        "wrk_seconds": plan.wrk_seconds,
        "load": load_runs,
        "cold_start": cold,
        "memory": memory,
        "notes": notes,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--smoke", action="store_true", help="short run: tiny sizes, 1 s wrk")
    parser.add_argument("--output", type=Path, default=RESULTS, help="default: %(default)s")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk", default=None, help="the wrk executable (default: from PATH)")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL

    wrk = load.find_wrk(args.wrk)
    if wrk is None and not args.skip_http:
        if os.environ.get("REQUIRE_BENCH") == "1":
            print(
                "error: wrk is not installed (Debian: apt-get install wrk), and "
                "REQUIRE_BENCH=1 forbids skipping the load tests",
                file=sys.stderr,
            )
            return 2
        print(
            "wrk is not installed (Debian: apt-get install wrk): skipping the load tests; "
            "REQUIRE_BENCH=1 makes this an error"
        )

    results: dict[str, Any] = {
        "meta": {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "smoke": args.smoke,
            "machine": _machine(),
            "commit": _git_commit(),
            "model_version": metadata.version("ames-regression-model"),
            "libraries": _versions(),
            "wrk": load.wrk_version(wrk) if wrk else None,
        },
        "in_process": {} if args.skip_in_process else measure_in_process(plan),
        "api": {} if args.skip_http else measure_api(plan, wrk, args.connections),
    }
    if not args.skip_http and wrk is not None:
        say("HTTP: the API with and without a shadow challenger")
        results["shadow"] = shadow.run(plan.shadow_rounds, plan.wrk_seconds, args.connections)
    results["ratios"] = {
        "engines": report.engine_ratios(results["in_process"]),
        "api_vs_bare": report.api_ratios(results["api"]),
    }
    results["targets"] = report.targets(results)
    json_path, png_path = args.output / "bench.json", args.output / "bench.png"
    report.write_json(results, json_path)
    report.plot(results, png_path)
    print(report.render(results))
    print(f"\nwrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
