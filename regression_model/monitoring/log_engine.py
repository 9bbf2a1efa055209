"""How the prediction log is opened: by those who write it (the API, ``log-migrate``,
``outcomes import``: created where it is missing, SQLite in WAL mode), by
``log-prune`` (written, never created) and by the commands that only read it
(``drift``, ``performance``, ``compare``, ``market-data``: read-only).

A reader or a pruner never creates a directory or a file and never changes
the database: a SQLite log is opened through a ``file:`` URI, ``mode=ro``
(read) or ``mode=rw`` (prune), with no pragma that writes (its journal mode
stays what the writers made it; a WAL-mode log in a directory that cannot be written is
read as immutable), so a mistyped path is "no prediction log
at PATH", not an empty database made there, and a log on a read-only mount
or snapshot can be read. :func:`check_log` says when what is there is no log.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic_core import from_json, to_json
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import DatabaseError

#: "create": the writers'; "write": changed, never created (log-prune); "read": read-only.
Access = Literal["create", "write", "read"]

#: What a command pointed at no log says next (with ``check --database-url``).
CREATE_HINT = "create it with `regression-model log-migrate`, or check --database-url"


class LogNotFoundError(LookupError):
    """No prediction log where a command that does not create one looked:
    the file is missing, empty or not a SQLite database, or the database has
    no ``predictions`` table. Its message names the place and why."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"no prediction log at {where}: {reason} ({CREATE_HINT})")
        self.where = where
        self.reason = reason


def database_url(url_or_path: str) -> str:
    """A SQLAlchemy URL: PostgreSQL URLs get the psycopg 3 driver, a plain
    path becomes a SQLite URL."""
    if "://" not in url_or_path:
        return f"sqlite:///{Path(url_or_path).expanduser().resolve()}"
    scheme, rest = url_or_path.split("://", 1)
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    return url_or_path


def _json(value: Any) -> str:
    return to_json(value).decode()


def _sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL (None: in memory, or not a plain file URL)."""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    return path if path and path != ":memory:" and "?" not in path else None


def create_log_engine(
    url_or_path: str, *, timeout: float = 5.0, access: Access = "create"
) -> Engine:
    """An engine for the log. ``timeout`` bounds connecting and each statement,
    so a database that is down or hung fails fast instead of blocking.
    ``access`` (module docstring): with "write" or "read" a SQLite file that is
    missing or empty is a :class:`LogNotFoundError`, nothing created."""
    url = database_url(url_or_path)
    if url.startswith("sqlite"):
        path = _sqlite_file(url)
        if access != "create" and path is not None:
            return _existing_sqlite(url, path, timeout, access)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": timeout},
            json_serializer=_json,
            json_deserializer=from_json,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            # WAL: readers never block the writers of other workers, and a
            # commit is one append to the log file.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        milliseconds = int(timeout * 1000)
        connect_args = {
            "connect_timeout": max(1, int(timeout)),
            "options": f"-c statement_timeout={milliseconds} -c lock_timeout={milliseconds}",
        }
    return create_engine(
        url,
        connect_args=connect_args,
        pool_pre_ping=True,
        json_serializer=_json,
        json_deserializer=from_json,
    )


def _existing_sqlite(url: str, path: str, timeout: float, access: Access) -> Engine:
    """A SQLite file that must be there, opened read-only or read-write
    (``mode=ro``/``mode=rw``: SQLite itself never creates it), no pragma set."""
    file = Path(path)
    if not file.exists():
        raise LogNotFoundError(path, "no such file")
    if not file.is_file():
        raise LogNotFoundError(path, "not a file")
    if file.stat().st_size == 0:
        raise LogNotFoundError(path, "the file is empty")
    uri = f"file:{quote(path)}?mode={'ro' if access == 'read' else 'rw'}"
    if access == "read" and _unchangeable_wal(file):
        uri += "&immutable=1"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)

    return create_engine(url, creator=connect, json_serializer=_json, json_deserializer=from_json)


def _unchangeable_wal(file: Path) -> bool:
    """A WAL-mode database (header bytes 18-19: 2) in a directory no one here
    can write (a read-only mount, a snapshot), with no ``-wal`` file: SQLite
    would need to make its ``-shm`` file to read it, so it is read as
    immutable (nothing can change it: its writers would need that directory
    too)."""
    if os.access(file.parent, os.W_OK) or Path(f"{file}-wal").exists():
        return False
    with open(file, "rb") as handle:
        header = handle.read(20)
    return header[:16] == b"SQLite format 3\x00" and header[18:20] == b"\x02\x02"


def check_log(engine: Engine) -> None:
    """A :class:`LogNotFoundError` unless the database holds a prediction log
    (its ``predictions`` table); other database errors (down, refused) pass up."""
    where = engine.url.render_as_string(hide_password=True)
    if engine.url.get_backend_name() == "sqlite" and engine.url.database:
        where = engine.url.database
    try:
        found = inspect(engine).has_table("predictions")
    except DatabaseError as exc:
        if "not a database" not in str(exc.orig):
            raise
        raise LogNotFoundError(where, "the file is not a SQLite database") from exc
    if not found:
        raise LogNotFoundError(where, "it has no predictions table")
