"""``make_prediction`` in process: time per call for each engine and batch size,
and peak resident memory of a whole process pricing the largest batch.

The largest batch of a run (1,000,000 houses) is measured in a child process
per engine, ``python -m benchmarks.inprocess --engine E --rows N``: its peak
resident memory (``ru_maxrss``) then covers the imports, the model, the input
frame and the prediction of that engine alone, and the parent never holds a
million-row frame.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.data import SEED, json_houses, resample_houses
from regression_model import ENGINES, Engine, InputData, make_prediction
from testkit import peak_rss_bytes

CHILD_MARK = "BENCH_CHILD_JSON "


def predict(engine: Engine, data: InputData) -> list[float | None]:
    """``make_prediction`` on ``engine``; every house must be priced."""
    result = make_prediction(input_data=data, engine=engine)
    if result["errors"]:
        raise RuntimeError(f"{engine}: houses were refused: {result['errors'][:3]}")
    return result["predictions"]


def time_calls(
    call: Callable[[], object], *, max_repeats: int, budget_s: float, min_repeats: int = 3
) -> list[float]:
    """Seconds per call: up to ``max_repeats`` calls, stopping early once
    ``budget_s`` has passed and at least ``min_repeats`` were made."""
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < max_repeats:
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
        if len(times) >= min_repeats and time.perf_counter() - started > budget_s:
            break
    return times


def summarise(engine: Engine, rows: int, times: Sequence[float], where: str) -> dict[str, Any]:
    median = statistics.median(times)
    return {
        "engine": engine,
        "rows": rows,
        "input": "DataFrame",
        "where": where,
        "repeats": len(times),
        "median_s": median,
        "min_s": min(times),
        "max_s": max(times),
        "per_house_s": median / rows,
    }


def measure_in_parent(
    engine: Engine, rows: int, *, max_repeats: int, budget_s: float
) -> dict[str, Any]:
    frame = resample_houses(rows)
    predict(engine, frame.head(1))  # loads the model once, outside the timing
    times = time_calls(
        lambda: predict(engine, frame),
        max_repeats=max_repeats,
        budget_s=budget_s,
        min_repeats=min(3, max_repeats),
    )
    return summarise(engine, rows, times, "this process")


def measure_dict(engine: Engine, *, max_repeats: int, budget_s: float) -> dict[str, Any]:
    """One house given as a dict, the form the API passes."""
    house = json_houses(1)[0]
    predict(engine, house)
    times = time_calls(lambda: predict(engine, house), max_repeats=max_repeats, budget_s=budget_s)
    return {**summarise(engine, 1, times, "this process"), "input": "dict"}


def child_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="time one engine on one batch; peak memory")
    parser.add_argument("--engine", required=True, choices=ENGINES)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    predict(args.engine, resample_houses(1, args.seed))  # load the model
    frame = resample_houses(args.rows, args.seed)
    before = peak_rss_bytes() / 1e6
    times = [
        time_calls(lambda: predict(args.engine, frame), max_repeats=1, budget_s=0)[0]
        for _ in range(args.repeats)
    ]
    result = summarise(args.engine, args.rows, times, "child process")
    result["peak_rss_mb"] = peak_rss_bytes() / 1e6
    result["peak_rss_before_predicting_mb"] = before
    print(CHILD_MARK + json.dumps(result), flush=True)
    return 0


def measure_in_child(
    engine: Engine, rows: int, *, repeats: int, timeout_s: float
) -> dict[str, Any]:
    """Run :func:`child_main` in a fresh interpreter and return what it reports."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.inprocess",
        "--engine",
        engine,
        "--rows",
        str(rows),
        "--repeats",
        str(repeats),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith(CHILD_MARK)]
    if not lines:
        raise RuntimeError(f"{' '.join(command)} reported nothing:\n{done.stdout[-3000:]}")
    reported: dict[str, Any] = json.loads(lines[-1].removeprefix(CHILD_MARK))
    return reported


if __name__ == "__main__":
    sys.exit(child_main())
