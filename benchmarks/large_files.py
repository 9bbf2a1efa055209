"""Scoring large files: ``regression-model predict`` streamed, next to a bare
``pandas.read_csv`` of the same file, and on Dask.

    python -m benchmarks.large_files            # 1M and 10M rows: about 15 minutes on 2 cores
    python -m benchmarks.large_files --smoke    # small sizes: about a minute

Measured in the same run, each command in a process of its own (wall time,
and peak resident memory from the kernel's accounting of that process):

- CSV -> CSV of ``rows`` houses, and ``pandas.read_csv`` of the same file
  (the ratio: target <= 3x; peak memory: target <= 1.5 GB);
- Parquet -> Parquet of the same houses (target: no slower than CSV -> CSV);
- CSV -> CSV of ``big_rows`` houses (target: peak memory within 10 % of
  the ``rows`` run: memory does not grow with the file);
- ``big_rows`` houses on Dask (``--dask local``'s cluster, sized to the
  machine): wall time and each worker's peak memory.

Inputs are made by :mod:`regression_model.batch.resample` (seed 0) in a
scratch directory (``--scratch``, default: the system's temporary directory)
and deleted afterwards; the big file repeats the ``rows`` file's houses.
Figures are printed and written to ``results/large_files.json``, never
asserted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from regression_model.batch.resample import write_houses
from testkit import peak_rss_bytes

RESULTS = Path(__file__).resolve().parent / "results"
STARTED = time.monotonic()


@dataclass(frozen=True)
class Plan:
    rows: int
    #: A multiple of ``rows``: the big file repeats the first one's houses.
    big_rows: int
    dask_rows: int
    repeats: int


FULL = Plan(rows=1_000_000, big_rows=10_000_000, dask_rows=10_000_000, repeats=2)
SMOKE = Plan(rows=20_000, big_rows=100_000, dask_rows=20_000, repeats=1)


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f} s] {message}", flush=True)


def measure(label: str, command: list[str], rows: int) -> dict[str, Any]:
    """Run ``command`` in a child process: wall time, CPU time, peak RSS."""
    say(f"{label}: {rows:,} rows")
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = code = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        told = errors.read().decode(errors="replace")
    if code not in (0, 3):  # 3: some rows were rejected, still a complete run
        raise RuntimeError(f"{label} failed ({code}): {told[-2000:]}")
    return {
        "label": label,
        "rows": rows,
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "rows_per_s": round(rows / wall),
    }


def predict_command(source: Path, target: Path) -> list[str]:
    run = [sys.executable, "-m", "regression_model", "predict", "--quiet"]
    return [*run, "--input", str(source), "--output", str(target)]


def read_csv_command(source: Path) -> list[str]:
    return [sys.executable, "-c", "import sys, pandas; pandas.read_csv(sys.argv[1])", str(source)]


def repeat_file(source: Path, target: Path, times: int) -> None:
    """``source``'s rows ``times`` over, under one header."""
    with source.open("rb") as head:
        header = head.readline()
    with target.open("wb") as out:
        out.write(header)
        for _ in range(times):
            with source.open("rb") as body:
                body.readline()
                shutil.copyfileobj(body, out, 16 << 20)


def best(runs: list[dict[str, Any]], label: str) -> dict[str, Any]:
    return min((r for r in runs if r["label"] == label), key=lambda r: float(r["wall_s"]))


def measure_dask(source: Path, target: Path, rows: int) -> dict[str, Any]:
    """``--dask local``'s scoring of ``source``: the cluster (sized to the
    machine) is started first and timed apart; each worker's peak memory is
    read from the worker itself."""
    from distributed import Client, LocalCluster

    from regression_model import get_config
    from regression_model.batch.dask_scoring import score_files

    say(f"dask local: {rows:,} rows")
    started = time.perf_counter()
    with (
        LocalCluster(host="127.0.0.1", dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        startup = time.perf_counter() - started
        workers = client.scheduler_info()["workers"]
        began = time.perf_counter()
        counts = score_files(
            str(source), str(target), address=cluster.scheduler_address, config=get_config().model
        )
        wall = time.perf_counter() - began
        peaks = client.run(peak_rss_bytes)  # each worker's own
    return {
        "label": "dask local CSV -> CSV",
        "rows": rows,
        "rows_read": counts.read,
        "workers": len(workers),
        "threads_per_worker": sorted({w["nthreads"] for w in workers.values()}),
        "memory_limit_per_worker_mb": sorted(
            {round(w["memory_limit"] / 2**20) for w in workers.values()}
        ),
        "cluster_start_s": round(startup, 2),
        "wall_s": round(wall, 2),
        "rows_per_s": round(rows / wall),
        "peak_rss_mb_per_worker": sorted(round(b / 2**20, 1) for b in peaks.values()),
    }


def run(plan: Plan, scratch: Path) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    csv_in, parquet_in = scratch / "houses.csv", scratch / "houses.parquet"
    say(f"making {plan.rows:,} houses (CSV and Parquet)")
    write_houses(csv_in, plan.rows)
    write_houses(parquet_in, plan.rows)
    sizes = {"csv_mb": csv_in.stat().st_size / 1e6, "parquet_mb": parquet_in.stat().st_size / 1e6}
    for _ in range(plan.repeats):  # interleaved, so load from elsewhere hits all alike
        runs.append(measure("pandas.read_csv", read_csv_command(csv_in), plan.rows))
        runs.append(measure("CSV -> CSV", predict_command(csv_in, scratch / "out.csv"), plan.rows))
        runs.append(
            measure(
                "Parquet -> Parquet",
                predict_command(parquet_in, scratch / "out.parquet"),
                plan.rows,
            )
        )
    parquet_in.unlink()
    big = scratch / "big.csv"
    say(f"making {plan.big_rows:,} houses")
    repeat_file(csv_in, big, plan.big_rows // plan.rows)
    sizes["big_csv_mb"] = big.stat().st_size / 1e6
    runs.append(measure("CSV -> CSV", predict_command(big, scratch / "out.csv"), plan.big_rows))
    (scratch / "out.csv").unlink()
    dask_in = big if plan.dask_rows == plan.big_rows else csv_in
    dask = measure_dask(dask_in, scratch / "dask-out", plan.dask_rows)
    return {"runs": runs, "dask": dask, "file_sizes_mb": {k: round(v) for k, v in sizes.items()}}


def summarise(results: dict[str, Any], plan: Plan) -> dict[str, Any]:
    runs = results["runs"]
    small = [r for r in runs if r["rows"] == plan.rows]
    read, csv, parquet = (
        best(small, label) for label in ("pandas.read_csv", "CSV -> CSV", "Parquet -> Parquet")
    )
    big = next(r for r in runs if r["rows"] == plan.big_rows and r["label"] == "CSV -> CSV")
    return {
        "csv_vs_read_csv": round(csv["wall_s"] / read["wall_s"], 2),
        "csv_peak_rss_mb": csv["peak_rss_mb"],
        "parquet_vs_csv": round(parquet["wall_s"] / csv["wall_s"], 2),
        "peak_rss_big_vs_small": round(big["peak_rss_mb"] / csv["peak_rss_mb"], 3),
        "dask_wall_s": results["dask"]["wall_s"],
        "dask_peak_rss_mb_per_worker": results["dask"]["peak_rss_mb_per_worker"],
    }


def run_table(runs: list[dict[str, Any]], label_width: int = 22) -> list[str]:
    """The lines of a table of :func:`measure`'s runs."""
    lines = [
        f"  {'run':<{label_width}} {'rows':>11} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} "
        f"{'rows/s':>10}"
    ]
    for r in runs:
        lines.append(
            f"  {r['label']:<{label_width}} {r['rows']:>11,} {r['wall_s']:>8.2f} "
            f"{r['cpu_s']:>8.2f} {r['peak_rss_mb']:>8.0f} {r['rows_per_s']:>10,}"
        )
    return lines


def render(results: dict[str, Any]) -> str:
    lines = ["", "scoring large files (best of the repeats; each run in its own process)"]
    lines += run_table(results["runs"])
    d = results["dask"]
    lines.append(
        f"  {'dask local':<22} {d['rows']:>11,} {d['wall_s']:>8.2f} {'':>8} {'':>8} "
        f"{d['rows_per_s']:>10,}   {d['workers']} workers x {d['threads_per_worker']} "
        f"threads, peak MB per worker {d['peak_rss_mb_per_worker']} "
        f"(cluster start {d['cluster_start_s']} s)"
    )
    s = results["summary"]
    lines += [
        "",
        "targets (reported, never asserted)",
        f"  CSV -> CSV vs pandas.read_csv: {s['csv_vs_read_csv']}x (target <= 3x)",
        f"  CSV -> CSV peak memory: {s['csv_peak_rss_mb']:.0f} MB (target <= 1500 MB)",
        f"  Parquet -> Parquet vs CSV -> CSV: {s['parquet_vs_csv']}x time (target <= 1)",
        f"  peak memory, big file vs small: {s['peak_rss_big_vs_small']}x (target <= 1.10)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.large_files", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--smoke", action="store_true", help="small sizes, one repeat")
    parser.add_argument("--output", type=Path, default=RESULTS, help="default: %(default)s")
    parser.add_argument("--scratch", type=Path, default=None, help="where inputs are made")
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    scratch = Path(tempfile.mkdtemp(prefix="large-files-", dir=args.scratch))
    try:
        results = run(plan, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["summary"] = summarise(results, plan)
    results["meta"] = {**run_facts(), "smoke": args.smoke, "plan": asdict(plan)}
    publish(results, args.output / "large_files.json", render(results))
    return 0


def run_facts() -> dict[str, Any]:
    """When and on what a run was measured."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def publish(results: dict[str, Any], path: Path, text: str) -> None:
    """Write the results as JSON to ``path`` and print their table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(text)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    sys.exit(main())
