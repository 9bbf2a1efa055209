"""The compiled model for engines that do not run Python: :func:`to_sql`
writes the tables and the input rules as one SQL query (the ``[sql]`` extra,
sqlglot), for SQLite, DuckDB, PostgreSQL and the other dialects listed in
:data:`DIALECTS`."""

from regression_model.export.sql import DIALECTS, EXECUTED_DIALECTS, input_columns, to_sql

__all__ = ["DIALECTS", "EXECUTED_DIALECTS", "input_columns", "to_sql"]
