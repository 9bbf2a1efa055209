"""The prediction log's spool directory: where records wait, on local disk,
while the log's database does not take them.

Records are JSON lines. Each worker appends to a spool file of its own
(``spool-<pid>-<random>.jsonl``), fsync'd after each append, and holds an
exclusive lock on it while it lives; a failed append is cut off again, so a
file never holds half a line in the middle. A spool file nobody holds (the
worker closed it, or died) may be replayed by any worker: read a batch at a
time into the database, then deleted. Lines that are not records are kept
apart (``unreadable-spool-*.jsonl``) for a person to look at, and so are the
records the database refused (``unwritable-<pid>.jsonl``).

This module does the file work only; when to spool, retry or replay, and
what is counted and logged, is the storage's (``log_storage.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, NamedTuple

from api.app.operations.log_records import Record, house_json
from regression_model.monitoring.log_store import FIELDS, record_json

logger = logging.getLogger(__name__)


def spool_line(record: Record) -> bytes:
    """A record as one line of a spool file (without its newline)."""
    return record_json(record)


def record_of_line(line: bytes) -> Record:
    """The record of a spool file's line (ValueError when it is not one)."""
    record: Record = json.loads(line)
    record["inputs"] = house_json(record.get("inputs"))
    return {name: record.get(name) for name in FIELDS}


class Replayed(NamedTuple):
    """What replaying one spool file did."""

    #: records written (or found already written) in the database
    records: int
    #: lines that were not records, kept in ``kept``
    unreadable: int
    kept: Path | None


class SpoolFile:
    """This worker's spool file in ``directory``, created on the first append."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fd: int | None = None

    def append(self, records: list[Record]) -> None:
        """Append ``records`` and fsync; on failure the file is cut back to
        where it ended, and the exception raised."""
        data = b"".join(spool_line(record) + b"\n" for record in records)
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"spool-{os.getpid()}-{uuid.uuid4().hex}.jsonl"
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)  # others leave it alone while we live
            self._fd = fd
        fd = self._fd
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            try:
                os.ftruncate(fd, end)
            except OSError:
                # It cannot even be cut: start another file next time (this
                # one ends with a partial line, which replay stops at).
                self.close()
            raise

    def close(self) -> None:
        """Close the file: from now on any worker may replay it."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # releases the lock
            self._fd = None

    def replayable(self) -> list[Path]:
        """The spool files of the directory, by name; this worker's own is
        closed first, so that it is replayed too."""
        self.close()
        return sorted(self.directory.glob("spool-*.jsonl"))


def replay_file(
    path: Path, insert: Callable[[list[Record]], int], batch_records: int
) -> Replayed | None:
    """Pass the records of the spool file ``path`` to ``insert``, at most
    ``batch_records`` at a time (it returns how many of them it set aside),
    then delete the file, or keep it renamed when some lines were not
    records. None when another worker holds the file."""
    with _locked(path) as handle:
        if handle is None:
            return None  # another worker's current file
        replayed = unreadable = 0
        batch: list[Record] = []
        for line in handle:
            if not line.endswith(b"\n"):
                logger.warning("spool file %s ends with a partial line", path)
                break
            try:
                batch.append(record_of_line(line))
            except ValueError:
                unreadable += 1
                continue
            if len(batch) >= batch_records:
                replayed += len(batch) - insert(batch)
                batch = []
        replayed += len(batch) - insert(batch)
        kept = None
        if unreadable:
            # Kept for a person to look at, out of the replay's way.
            kept = path.with_name(f"unreadable-{path.name}")
            path.rename(kept)
        else:
            path.unlink()
    return Replayed(replayed, unreadable, kept)


def keep_unwritable(directory: Path, record: Record) -> Path:
    """Keep a record the database refused in this worker's ``unwritable``
    file; returns the file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"unwritable-{os.getpid()}.jsonl"
    with path.open("ab") as handle:
        handle.write(spool_line(record) + b"\n")
    return path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[IO[bytes] | None]:
    """``path`` opened and exclusively locked, or None when another process holds it."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        yield None
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        if not path.exists():  # replayed and deleted by another worker meanwhile
            yield None
            return
        yield handle
