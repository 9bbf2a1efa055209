"""The model where the data lives: a large Parquet file priced inside DuckDB
by the exported query (``regression_model.export.to_sql``), next to
``regression-model predict`` on the same file, in the same run.

    python -m benchmarks.sql_export                     # 1M rows
    python -m benchmarks.sql_export --rows 10000000     # the issue's 10M rows
    python -m benchmarks.sql_export --smoke             # 20,000 rows: seconds

Each command runs in a process of its own (``large_files.measure``: wall
time, CPU time, peak resident memory from the kernel's accounting of that
process), both writing Parquet: ``predict`` streams the file through the
package in chunks; DuckDB (:mod:`benchmarks.in_duckdb`, a process importing
DuckDB only) reads it with ``read_parquet`` behind a view named ``houses``
and writes the query's result with ``COPY``. Afterwards the two
outputs are compared row by row (the same rows priced, the largest relative
price difference), so a fast wrong answer shows. The input is made by
:mod:`regression_model.batch.resample` (seed 0) in a scratch directory and
deleted afterwards. A third run, the floor, reads and tests every input
column in DuckDB without pricing: no exported query can be faster, so the
floor's ratio to ``predict`` is what any could reach on the machine. Figures
are printed and written to ``results/sql_export.json``, never asserted; the
target is DuckDB at least 5x faster than ``predict``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.large_files import (
    RESULTS,
    best,
    measure,
    predict_command,
    publish,
    run_facts,
    run_table,
    say,
)
from regression_model import CompiledModel, load_model
from regression_model.batch.resample import write_houses
from regression_model.export import input_columns, to_sql


def duckdb_command(query: Path, source: Path, target: Path) -> list[str]:
    """The DuckDB child: :mod:`benchmarks.in_duckdb`, which imports DuckDB only."""
    return [sys.executable, "-m", "benchmarks.in_duckdb", str(query), str(source), str(target)]


def floor_query(model: CompiledModel) -> str:
    """Less than any query pricing these houses must do: read every input
    column, test each once (is it given?), write one number per row. Its
    speed bounds what an exported model can reach on this machine."""
    key, *inputs = (name for name, _ in input_columns(model.config.model))
    given = " + ".join(f'(CASE WHEN "{name}" IS NULL THEN 0 ELSE 1 END)' for name in inputs)
    return f'SELECT "{key}", {given} AS inputs_given FROM houses'


def _largest_relative_difference(ours: Any, theirs: Any) -> float | None:
    import pyarrow.compute as pc

    both = pc.and_(pc.is_valid(ours), pc.is_valid(theirs))
    relative = pc.abs(pc.subtract(pc.divide(pc.filter(ours, both), pc.filter(theirs, both)), 1))
    return pc.max(relative).as_py()  # type: ignore[no-any-return]


def agreement(from_duckdb: Path, from_predict: Path) -> dict[str, Any]:
    """The two outputs row by row: rows priced by each and by only one, and
    the largest relative difference of the prices both gave, and of their
    ranges' lows and highs (the columns both have the same names)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    sql_prices = pq.read_table(from_duckdb, columns=["price"])["price"]
    package = pq.read_table(from_predict, columns=["SalePrice"])["SalePrice"]
    ranges = [
        name
        for name in pq.read_schema(from_predict).names
        if name.startswith("SalePrice_") and name in pq.read_schema(from_duckdb).names
    ]
    sql_ranges, package_ranges = (
        pq.read_table(path, columns=ranges) for path in (from_duckdb, from_predict)
    )
    differences = [
        _largest_relative_difference(sql_ranges[name], package_ranges[name]) for name in ranges
    ]
    return {
        "rows": len(package),
        "priced_sql": len(sql_prices) - sql_prices.null_count,
        "priced_predict": len(package) - package.null_count,
        "priced_by_one_only": int(
            pc.sum(pc.xor(pc.is_valid(sql_prices), pc.is_valid(package))).as_py() or 0
        ),
        "max_relative_difference": _largest_relative_difference(sql_prices, package),
        "ranges": ranges,
        "ranges_given_by_one_only": sum(
            int(
                pc.sum(pc.xor(pc.is_valid(sql_ranges[n]), pc.is_valid(package_ranges[n]))).as_py()
                or 0
            )
            for n in ranges
        ),
        "max_relative_difference_ranges": max(
            (d for d in differences if d is not None), default=None
        ),
    }


def run(rows: int, repeats: int, scratch: Path) -> dict[str, Any]:
    model = load_model()
    assert isinstance(model, CompiledModel)
    query = scratch / "model.sql"
    query.write_text(to_sql(model, "duckdb"), encoding="utf-8")
    floor = scratch / "floor.sql"
    floor.write_text(floor_query(model), encoding="utf-8")
    source = scratch / "houses.parquet"
    say(f"making {rows:,} houses (Parquet)")
    write_houses(source, rows)
    from_duckdb, from_predict = scratch / "duckdb.parquet", scratch / "predict.parquet"
    runs: list[dict[str, Any]] = []
    for _ in range(repeats):  # interleaved, so load from elsewhere hits both alike
        runs.append(measure("predict", predict_command(source, from_predict), rows))
        runs.append(measure("DuckDB SQL", duckdb_command(query, source, from_duckdb), rows))
        floor_run = duckdb_command(floor, source, scratch / "floor.parquet")
        runs.append(measure("DuckDB floor", floor_run, rows))
    predict, sql = best(runs, "predict"), best(runs, "DuckDB SQL")
    least = best(runs, "DuckDB floor")
    return {
        "runs": runs,
        "summary": {
            "speedup": round(predict["wall_s"] / sql["wall_s"], 2),
            "floor_speedup": round(predict["wall_s"] / least["wall_s"], 2),
            "predict_peak_rss_mb": predict["peak_rss_mb"],
            "duckdb_peak_rss_mb": sql["peak_rss_mb"],
        },
        "agreement": agreement(from_duckdb, from_predict),
        "parquet_mb": round(source.stat().st_size / 1e6),
    }


def render(results: dict[str, Any]) -> str:
    lines = ["", "pricing a Parquet file: the exported SQL in DuckDB vs regression-model predict"]
    lines += run_table(results["runs"], label_width=13)
    s, a = results["summary"], results["agreement"]
    lines += [
        "",
        f"  DuckDB vs predict: {s['speedup']}x faster (target >= 5x); peak memory "
        f"{s['duckdb_peak_rss_mb']:.0f} MB vs {s['predict_peak_rss_mb']:.0f} MB",
        f"  the floor (every input read and tested once, nothing priced): {s['floor_speedup']}x "
        "faster than predict, the most any exported query could be here",
        f"  agreement: {a['priced_predict']:,} of {a['rows']:,} rows priced by predict, "
        f"{a['priced_by_one_only']} priced by one only, largest relative price difference "
        f"{a['max_relative_difference']:.3g}",
        f"  ranges ({', '.join(a['ranges'])}): {a['ranges_given_by_one_only']} bounds given by "
        f"one only, largest relative difference {a['max_relative_difference_ranges']:.3g}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sql_export", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="default: %(default)s")
    parser.add_argument("--repeats", type=int, default=1, help="default: %(default)s")
    parser.add_argument("--smoke", action="store_true", help="20,000 rows")
    parser.add_argument("--output", type=Path, default=RESULTS, help="default: %(default)s")
    parser.add_argument("--scratch", type=Path, default=None, help="where the input is made")
    args = parser.parse_args(argv)
    rows = 20_000 if args.smoke else args.rows
    scratch = Path(tempfile.mkdtemp(prefix="sql-export-", dir=args.scratch))
    try:
        results = run(rows, args.repeats, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["meta"] = {**run_facts(), "rows": rows}
    publish(results, args.output / "sql_export.json", render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
