"""The process that computes drift reports for one API worker.

``python -m api.app.operations.drift_process``, started by
:class:`~api.app.operations.drift_reports.DriftReports`, never by hand. A report is
0.35-0.6 s of CPU in NumPy, pydantic-core and SQLite, most of it holding the
GIL: in a thread of the worker it made every I/O callback of the event loop
wait for the interpreter's switch interval, so ``/predict`` slowed down
tenfold while reports were computed. In a process of its own, at a lower CPU
priority (``NICENESS``), a report takes only the CPU that serving leaves.

The protocol is JSON lines over stdin and stdout (the database URL, which may
hold a password, never appears on a command line):

- first line in: ``{"url", "timeout", "window", "chunk_rows", "manifest"}``;
- then one line in per report, ``{"since": ISO 8601 or null}``, and one
  line out, ``{"report": {...}}`` or ``{"error": {"type", "database", "message"}}``.

It exits when its stdin closes: when the worker closes it, or when the worker
dies (the kernel closes the pipe), so it never outlives its worker.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import IO, Any

#: Added to this process's nice value: under CPU contention the kernel gives
#: it about a tenth of what a request-serving process gets (weight 110 against
#: 1024), yet it is not starved when the machine is merely busy.
NICENESS = 10


def _compute(setup: dict[str, Any], engine: Any, since: datetime | None) -> dict[str, Any]:
    from regression_model import __version__ as model_version
    from regression_model import get_config
    from regression_model.monitoring.drift import DriftAccumulator
    from regression_model.monitoring.log_rows import Unreadable
    from regression_model.monitoring.log_store import read_log

    accumulator = DriftAccumulator(setup["manifest"], get_config())
    skipped = Unreadable()  # malformed records: counted in the report, never a failure
    for chunk in read_log(
        engine,
        since=since,
        model_version=model_version,
        latest=setup["window"],
        # Chunks, not the whole window at once: the parsed houses of a chunk
        # are the largest thing a report holds in memory.
        chunk_rows=setup["chunk_rows"],
        unreadable=skipped,
    ):
        accumulator.add([inputs for inputs, _ in chunk], [price for _, price in chunk])
    return accumulator.report(
        model_version=model_version,
        generated_at=datetime.now(UTC),
        since=since,
        window=setup["window"],
        unreadable=skipped.records,
    )


def serve(source: IO[bytes], sink: IO[bytes]) -> None:
    """Answer report requests from ``source`` on ``sink`` until ``source`` ends."""
    from pydantic_core import from_json, to_json
    from sqlalchemy.exc import SQLAlchemyError

    from regression_model.monitoring.log_store import create_log_engine, migrate

    first = source.readline()
    if not first:
        return
    setup = from_json(first)
    engine = None
    for line in iter(source.readline, b""):
        request = from_json(line)
        since = datetime.fromisoformat(request["since"]) if request["since"] else None
        try:
            if engine is None:
                candidate = create_log_engine(setup["url"], timeout=setup["timeout"])
                # A report asked for before the writer's first write finds the
                # table (empty) instead of failing; idempotent, under a lock.
                migrate(candidate)
                engine = candidate
            answer: dict[str, Any] = {"report": _compute(setup, engine, since)}
        except Exception as exc:  # the worker logs it; the next request retries
            answer = {
                "error": {
                    "type": type(exc).__name__,
                    "database": isinstance(exc, SQLAlchemyError),
                    "message": str(exc)[:2000],
                }
            }
        sink.write(to_json(answer) + b"\n")
        sink.flush()


def main() -> int:
    os.nice(NICENESS)
    sink = sys.stdout.buffer
    # Anything a library prints goes to stderr (the worker's log), never into
    # the replies.
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, sink)
    return 0


if __name__ == "__main__":
    sys.exit(main())
