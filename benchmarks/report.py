"""Turn the measurements into ratios, targets (PASS/MISS, never a failure),
printed tables, the JSON file and the plot."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import NullFormatter

ONE_MILLION = 1_000_000
#: Issue 8's figure for 0.1.0 (100 houses per request, 1 worker, 16 connections);
#: the 100-house target is 10x this.
BASELINE_100_HOUSE_RPS = 3.2
ENGINE_LABELS = {
    "tables": 'default, engine="tables" (compiled model tables)',
    "pipeline": 'engine="pipeline" (the fitted scikit-learn pipeline)',
}


def _find(items: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    return next((i for i in items if all(i.get(k) == v for k, v in match.items())), None)


def engine_ratios(in_process: dict[str, Any]) -> list[dict[str, Any]]:
    """Per batch size: the pipeline's median time over the default engine's."""
    runs = [r for r in in_process.get("runs", []) if r["input"] == "DataFrame"]
    ratios = []
    for rows in sorted({r["rows"] for r in runs}):
        default = _find(runs, engine="tables", rows=rows)
        pipeline = _find(runs, engine="pipeline", rows=rows)
        if default and pipeline:
            ratios.append(
                {"rows": rows, "pipeline_over_default": pipeline["median_s"] / default["median_s"]}
            )
    return ratios


def api_ratios(api: dict[str, Any]) -> list[dict[str, Any]]:
    """Per worker count and body: the API's requests per second over the bare app's."""
    runs = api.get("load", [])
    ratios = []
    for run in runs:
        if run["app"] != "api":
            continue
        bare = _find(
            runs,
            app="bare",
            workers=run["workers"],
            houses=run["houses"],
            connections=run["connections"],
        )
        if bare and bare["requests_per_s"]:
            ratios.append(
                {
                    "workers": run["workers"],
                    "houses": run["houses"],
                    "connections": run["connections"],
                    "api_over_bare": run["requests_per_s"] / bare["requests_per_s"],
                }
            )
    return ratios


def _check(measured: float | None, ok: Callable[[float], bool]) -> str:
    if measured is None:
        return "n/a"
    return "PASS" if ok(measured) else "MISS"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 8's targets next to what this run measured."""
    in_process, api = results["in_process"], results["api"]
    speedups = {r["rows"]: r["pipeline_over_default"] for r in results["ratios"]["engines"]}
    memory = _find(in_process.get("peak_memory", []), engine="tables", rows=ONE_MILLION)
    load = api.get("load", [])
    many = api.get("connections")
    single_2 = _find(results["ratios"]["api_vs_bare"], workers=2, houses=1, connections=many)
    api_single_2 = _find(load, app="api", workers=2, houses=1, connections=many)
    api_100_1 = _find(load, app="api", workers=1, houses=100, connections=many)
    cold = [
        c["first_ready_s"]
        for c in api.get("cold_start", [])
        if c["app"] == "api" and c["workers"] == 1
    ]
    cold_median = statistics.median(cold) if cold else None
    worker_rss = [
        mb
        for m in api.get("memory", [])
        if m["app"] == "api"
        for mb in m["worker_rss_mb"].values()
        if mb is not None
    ]

    shadowed_1 = _find(results.get("shadow", {}).get("summary", []), houses=1)
    share = single_2["api_over_bare"] if single_2 else None
    failed = served = 0
    if api_single_2:
        failed = api_single_2["not_2xx"] + sum(api_single_2["socket_errors"].values())
        served = len(api_single_2["requests_per_worker"])
    clean = failed == 0 and served == 2
    rows: list[tuple[str, float | None, str, Callable[[float], bool]]] = [
        ("default >= 100x pipeline, 1 house", speedups.get(1), "{:.0f}x", lambda v: v >= 100),
        (
            "default >= 15x pipeline, 1,000,000 houses",
            speedups.get(ONE_MILLION),
            "{:.1f}x",
            lambda v: v >= 15,
        ),
        (
            "peak memory <= 1.5 GB, default engine, 1,000,000 houses incl. the frame",
            memory["peak_rss_mb"] if memory else None,
            "{:.0f} MB",
            lambda v: v <= 1500,
        ),
        (
            "API 1 house, 2 workers, 16 conn.: >= 50% of bare req/s, 0 errors, both workers",
            share,
            "{:.1%}" + f", {failed} errors, served by {served} of 2 workers",
            lambda v: v >= 0.5 and clean,
        ),
        (
            f"API 100 houses, 1 worker: >= 10x 0.1.0's {BASELINE_100_HOUSE_RPS} req/s (issue 8)",
            api_100_1["requests_per_s"] if api_100_1 else None,
            "{:.1f} req/s",
            lambda v: v >= 10 * BASELINE_100_HOUSE_RPS,
        ),
        (
            "cold start <= 1.5 s to ready (API, 1 worker, median)",
            cold_median,
            "{:.2f} s",
            lambda v: v <= 1.5,
        ),
        (
            "shadow challenger: >= 85% of the API's req/s without it (1 worker, 1 house)",
            shadowed_1["shadow_over_log"] if shadowed_1 else None,
            "{:.1%}",
            lambda v: v >= 0.85,
        ),
        (
            "<= 120 MB resident per worker (API, largest worker after load)",
            max(worker_rss) if worker_rss else None,
            "{:.0f} MB",
            lambda v: v <= 120,
        ),
    ]
    return [
        {
            "target": name,
            "measured": value,
            "shown": "-" if value is None else shown.format(value),
            "status": _check(value, ok),
        }
        for name, value, shown, ok in rows
    ]


def _duration(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _table(title: str, records: list[dict[str, Any]]) -> str:
    if not records:
        return f"\n== {title}: not measured\n"
    return f"\n== {title}\n" + pd.DataFrame(records).to_string(index=False) + "\n"


def render(results: dict[str, Any]) -> str:
    """The tables printed at the end of a run."""
    in_process, api = results["in_process"], results["api"]
    meta = results["meta"]
    text = [
        f"benchmarks {meta['date']} on {meta['machine']['cpu']} "
        f"({meta['machine']['cores']} cores), load average at start "
        f"{meta['machine']['load_average_at_start']}{' [SMOKE]' if meta['smoke'] else ''}"
    ]
    for note in in_process.get("notes", []) + api.get("notes", []):
        text.append(f"note: {note}")
    text.append(
        _table(
            "make_prediction (median per call)",
            [
                {
                    "engine": r["engine"],
                    "input": r["input"],
                    "rows": f"{r['rows']:,}",
                    "where": r["where"],
                    "repeats": r["repeats"],
                    "median": _duration(r["median_s"]),
                    "per house": _duration(r["per_house_s"]),
                }
                for r in in_process.get("runs", [])
            ],
        )
    )
    text.append(
        _table(
            "peak resident memory (a child process per engine)",
            [
                {
                    "engine": m["engine"],
                    "rows": f"{m['rows']:,}",
                    "peak RSS": f"{m['peak_rss_mb']:.0f} MB",
                    "before predicting": f"{m['peak_rss_before_predicting_mb']:.0f} MB",
                }
                for m in in_process.get("peak_memory", [])
            ],
        )
    )
    text.append(
        _table(
            "default engine vs pipeline",
            [
                {
                    "rows": f"{r['rows']:,}",
                    "pipeline / default": f"{r['pipeline_over_default']:.1f}x",
                }
                for r in results["ratios"]["engines"]
            ],
        )
    )
    text.append(
        _table(
            "HTTP load (wrk)",
            [
                {
                    "app": r["app"],
                    "workers": r["workers"],
                    "houses/request": r["houses"],
                    "connections": r["connections"],
                    "seconds": f"{r['seconds']:.1f}",
                    "requests": r["requests"],
                    "req/s": f"{r['requests_per_s']:.1f}",
                    "houses/s": f"{r['houses_per_s']:.0f}",
                    "p50 ms": f"{r['latency_ms']['p50']:.1f}",
                    "p99 ms": f"{r['latency_ms']['p99']:.1f}",
                    "max ms": f"{r['latency_ms']['max']:.1f}",
                    "non-2xx": r["not_2xx"],
                    "socket errors": sum(r["socket_errors"].values()),
                    "per worker": " ".join(str(n) for n in r["requests_per_worker"].values()),
                }
                for r in api.get("load", [])
            ],
        )
    )
    text.append(
        _table(
            "shadow challenger: the API with / without one (1 worker, SQLite log; medians)",
            [
                {
                    "houses/request": r["houses"],
                    "req/s without": r["log_requests_per_s"],
                    "req/s with": r["shadow_requests_per_s"],
                    "with / without": f"{r['shadow_over_log']:.1%}",
                    "each round": " ".join(f"{v:.0%}" for v in r["rounds_shadow_over_log"]),
                    "CPU µs/request": f"{r['log_cpu_us_per_request']:.0f} -> "
                    f"{r['shadow_cpu_us_per_request']:.0f}",
                    "shadowed": f"{r['shadowed_share']:.1%}",
                }
                for r in results.get("shadow", {}).get("summary", [])
            ],
        )
    )
    text.append(
        _table(
            "API vs bare app (requests per second)",
            [
                {
                    "workers": r["workers"],
                    "houses/request": r["houses"],
                    "connections": r["connections"],
                    "API / bare": f"{r['api_over_bare']:.1%}",
                }
                for r in results["ratios"]["api_vs_bare"]
            ],
        )
    )
    text.append(
        _table(
            "cold start (process start to the first 200 from /api/v1/ready)",
            [
                {
                    "app": c["app"],
                    "workers": c["workers"],
                    "first ready": f"{c['first_ready_s']:.2f} s",
                    "all workers ready": f"{c['all_ready_s']:.2f} s",
                }
                for c in api.get("cold_start", [])
            ],
        )
    )
    text.append(
        _table(
            "resident memory after load (VmRSS)",
            [
                {
                    "app": m["app"],
                    "workers": m["workers"],
                    "per worker": ", ".join(
                        f"{mb:.0f} MB" for mb in m["worker_rss_mb"].values() if mb is not None
                    ),
                    "supervisor": "-"
                    if m["supervisor_rss_mb"] is None
                    else f"{m['supervisor_rss_mb']:.0f} MB",
                }
                for m in api.get("memory", [])
            ],
        )
    )
    text.append(
        _table(
            "targets (reported, never asserted)",
            [
                {"target": t["target"], "measured": t["shown"], "": t["status"]}
                for t in results["targets"]
            ],
        )
    )
    return "\n".join(text)


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def plot(results: dict[str, Any], path: Path) -> None:
    """Time per house against batch size, log-log, one line per engine."""
    runs = results["in_process"].get("runs", [])
    meta = results["meta"]
    figure, axes = plt.subplots(figsize=(8, 5.5), layout="constrained")
    for engine in results["in_process"].get("engines", []):
        mine = sorted(
            (r for r in runs if r["engine"] == engine and r["input"] == "DataFrame"),
            key=lambda r: r["rows"],
        )
        if mine:
            axes.plot(
                [r["rows"] for r in mine],
                [r["per_house_s"] for r in mine],
                marker="o",
                label=ENGINE_LABELS.get(engine, engine),
            )
        single = _find(runs, engine=engine, input="dict")
        if single:
            axes.plot(
                [1],
                [single["per_house_s"]],
                marker="x",
                linestyle="none",
                markersize=9,
                label=f'engine="{engine}", one house as a dict',
            )
    # The ratio, halfway (in log scale) between the two engines' points.
    for ratio in results["ratios"]["engines"]:
        times = [r["per_house_s"] for r in runs if r["rows"] == ratio["rows"]
                 and r["input"] == "DataFrame"]  # fmt: skip
        axes.annotate(
            f"{ratio['pipeline_over_default']:.0f}x",
            (ratio["rows"], math.sqrt(min(times) * max(times))),
            textcoords="offset points",
            xytext=(6, 0),
            va="center",
            color="dimgray",
        )
    axes.set_xscale("log")
    axes.set_yscale("log")
    sizes = sorted({r["rows"] for r in runs})
    axes.set_xticks(sizes, [f"{size:,}" for size in sizes])
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("houses per make_prediction call (batch size)")
    axes.set_ylabel("seconds per house (median); pipeline / default beside each size")
    axes.set_title(
        f"make_prediction, time per house — {meta['date'][:10]}, "
        f"{meta['machine']['cores']} cores{' (smoke)' if meta['smoke'] else ''}"
    )
    axes.grid(True, which="both", alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
