"""``python -m api``: serve the API with uvicorn, configured from the environment.

``PORT`` (default 8001) and ``WEB_CONCURRENCY`` (default 1) come from
:class:`~api.app.config.Settings`; ``--port``/``--workers``/``--host`` override
them. Each worker process loads the model once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvicorn
from pydantic import ValidationError

from api.app.config import Settings
from api.app.structured_logging import logging_config


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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
