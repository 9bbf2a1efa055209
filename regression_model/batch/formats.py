"""The file formats batch scoring reads and writes (CSV and Parquet, both
through pyarrow), told by the file's extension unless said."""

from __future__ import annotations

from pathlib import Path

from regression_model.batch.errors import (
    BatchFileError,
    InputFileError,
    MissingDependencyError,
    OutputFileError,
)

FORMATS = ("csv", "parquet")
EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
ARROW_HINT = "pip install 'ames-regression-model[arrow]'"


def require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"reading and writing CSV and Parquet files needs pyarrow: {ARROW_HINT}"
        ) from exc


def file_format(name: str, explicit: str | None, *, role: str) -> str:
    """``explicit``, else the format the name's extension says."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise BatchFileError(f"unknown {role} format {explicit!r}: {' or '.join(FORMATS)}")
        return explicit
    if name == "-":
        return "csv"
    suffix = Path(name).suffix.lower()
    if suffix not in EXTENSIONS:
        known = ", ".join(EXTENSIONS)
        error = InputFileError if role == "input" else OutputFileError
        raise error(
            f"cannot tell the format of {name!r} from its extension: use {known}, "
            f"or say it with --{role}-format {'|'.join(FORMATS)}"
        )
    return EXTENSIONS[suffix]
