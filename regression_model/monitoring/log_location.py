"""Where the prediction log is: one rule for the command line (``drift``,
``log-migrate``, ``log-prune``) and the service.

A database URL, when given, wins over a SQLite file's path; blank means not
given. A path is what it says: :func:`~regression_model.monitoring.log_store.database_url`
makes it a ``sqlite:///`` URL when the log is opened. Nothing here needs the
``[log]`` extra.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

#: The environment variables that say where the log is, the first set winning.
DATABASE_URL_VAR, LOG_PATH_VAR = "DATABASE_URL", "PREDICTION_LOG_PATH"


def log_url(database_url: str | None, path: str | os.PathLike[str] | None) -> str | None:
    """The log's URL or SQLite path: ``database_url`` unless blank, else
    ``path``; None when neither is given (no log)."""
    if database_url is not None and database_url.strip():
        return database_url.strip()
    if path is not None:
        return str(path)
    return None


def log_url_from_environment(
    database_url: str | None = None, environ: Mapping[str, str] = os.environ
) -> str | None:
    """:func:`log_url` of ``database_url`` (a command's option), else
    ``$DATABASE_URL``, and ``$PREDICTION_LOG_PATH`` (unless empty)."""
    return log_url(
        database_url or environ.get(DATABASE_URL_VAR), environ.get(LOG_PATH_VAR) or None
    )


def log_files(engine: Engine) -> dict[str, str]:
    """The files of a SQLite log (the database and its journals), each named
    "the prediction log": what no command's output may overwrite
    (:func:`regression_model.output_files.check_target`). A server's log has none."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return {}
    database = str(url.database)
    return {database + suffix: "the prediction log" for suffix in ("", "-wal", "-shm", "-journal")}
