"""The DuckDB side of :mod:`benchmarks.sql_export`: one query over a Parquet
file, its result written to Parquet, in a process that imports DuckDB and
nothing of the package, as a user pricing a table with the exported query
runs it. (Run as ``-m benchmarks.sql_export``, the child imported the package
and pandas first: 0.2 s of wall time that DuckDB's work did not need, about
3 % of it at 10M rows.)

    python -m benchmarks.in_duckdb QUERY_FILE SOURCE_PARQUET TARGET_PARQUET
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb


def price_in_duckdb(query: Path, source: Path, target: Path) -> None:
    """A view ``houses`` over ``source``, then the query's result to ``target``."""
    with duckdb.connect() as connection:
        parquet = str(source).replace("'", "''")
        connection.execute(f"CREATE VIEW houses AS SELECT * FROM read_parquet('{parquet}')")
        statement = query.read_text(encoding="utf-8").rstrip().rstrip(";")
        out = str(target).replace("'", "''")
        connection.execute(f"COPY ({statement}) TO '{out}' (FORMAT parquet)")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    price_in_duckdb(*(Path(argument) for argument in sys.argv[1:]))
