"""``python -m api``: serve the API with uvicorn, configured from the environment.

``PORT`` (default 8001) and ``WEB_CONCURRENCY`` (default 1) come from
:class:`~api.app.core.settings.Settings`; ``--port``/``--workers``/``--host`` override
them. Each worker process loads the model once.

Metrics count across workers: before any worker starts, this sets
``PROMETHEUS_MULTIPROC_DIR`` to a fresh directory (removed on exit), or
empties the one the environment names, so each server starts from zero.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from api.app.core.settings import MULTIPROC_ENV_VAR, Settings
from api.app.core.structured_logging import logging_config


@contextmanager
def metrics_directory() -> Iterator[Path]:
    """The directory where every worker writes its metrics, empty at start."""
    given = os.environ.get(MULTIPROC_ENV_VAR)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield directory
        return
    directory = Path(tempfile.mkdtemp(prefix="house-prices-metrics-"))
    os.environ[MULTIPROC_ENV_VAR] = str(directory)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"error: invalid settings in the environment:\n{exc}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0", help="interface to bind (default: all)")
    parser.add_argument("--port", type=int, default=settings.port, help="default: $PORT or 8001")
    parser.add_argument(
        "--workers",
        type=int,
        default=settings.web_concurrency,
        help="worker processes (default: $WEB_CONCURRENCY or 1)",
    )
    args = parser.parse_args(argv)
    with metrics_directory():
        _serve(args, settings)
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    uvicorn.run(
        "api.app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=logging_config(settings.log_level),
        access_log=False,  # api.access logs each request, with its id
        server_header=False,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
    )


if __name__ == "__main__":
    raise SystemExit(main())
