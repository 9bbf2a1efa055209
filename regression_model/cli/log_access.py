"""How the commands that read or write the prediction log (``drift``,
``performance``, ``compare``, ``market-data``, ``outcomes import``,
``log-migrate``, ``log-prune``) find it and open it: ``--database-url``, else
the environment (:func:`regression_model.monitoring.log_url_from_environment`);
each needs the ``[log]`` extra, and says so when it is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from regression_model.monitoring import DATABASE_URL_VAR, LOG_PATH_VAR, log_url_from_environment

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from regression_model.monitoring.log_engine import Access

LOG_EXTRA_HINT = (
    "the prediction log needs SQLAlchemy, Alembic and psycopg: "
    "pip install 'ames-regression-model[log]'"
)
DATABASE_URL_HELP = f"default: ${DATABASE_URL_VAR}, then ${LOG_PATH_VAR}"
#: ``--database-url``'s help for the commands that read the log.
LOG_URL_HELP = f"the prediction log: a SQLAlchemy URL or a SQLite file ({DATABASE_URL_HELP})"


def database_url_argument(parser: argparse.ArgumentParser, described: str = LOG_URL_HELP) -> None:
    parser.add_argument("--database-url", help=described)


def log_url(args: argparse.Namespace) -> str | None:
    """Where the prediction log is; None, after saying why, when the ``[log]``
    extra is missing or nothing says where."""
    try:
        import regression_model.monitoring.log_store  # noqa: F401 - needs the [log] extra
    except ImportError as exc:
        print(f"error: {LOG_EXTRA_HINT} ({exc})", file=sys.stderr)
        return None
    url = log_url_from_environment(args.database_url)
    if url is None:
        print(f"error: say where the log is: --database-url, ${DATABASE_URL_VAR} or "
              f"${LOG_PATH_VAR}", file=sys.stderr)  # fmt: skip
    return url


@contextlib.contextmanager
def log_engine(url: str) -> Iterator[Engine]:
    """The log's engine, created where it is missing (the writers'), disposed
    of on the way out."""
    from regression_model.monitoring.log_store import create_log_engine

    engine = create_log_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextlib.contextmanager
def existing_log(url: str, access: Access = "read") -> Iterator[Engine | None]:
    """The engine of a log that must be there, opened read-only ("read": the
    commands that only read it) or read-write ("write": ``log-prune``), nothing
    created; None, after saying why, when no log is there
    (:class:`~regression_model.monitoring.log_store.LogNotFoundError`: exit 2)
    or it cannot be read."""
    from sqlalchemy.exc import SQLAlchemyError

    from regression_model.monitoring.log_store import (
        LogNotFoundError,
        check_log,
        create_log_engine,
    )

    try:
        engine = create_log_engine(url, access=access)
    except LogNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        yield None
        return
    try:
        check_log(engine)
    except (LogNotFoundError, SQLAlchemyError) as exc:
        if isinstance(exc, LogNotFoundError):
            print(f"error: {exc}", file=sys.stderr)
        else:
            unreadable(exc)
        engine.dispose()
        yield None
        return
    try:
        yield engine
    finally:
        engine.dispose()


def shown(engine: Engine) -> str:
    """The log's URL, its password hidden."""
    return engine.url.render_as_string(hide_password=True)


def unreadable(exc: Exception) -> int:
    """Say that the log could not be read (``exc``: SQLAlchemy's error); the exit status."""
    print(f"error: cannot read the prediction log: {exc}", file=sys.stderr)
    return 2
