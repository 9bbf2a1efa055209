"""What tests, benchmarks, the release rehearsal and ``deploy/kubernetes/measure.py``
share for running things around the API, written once: :mod:`testkit.processes`
(ports, servers, CPU and memory of a process) and :mod:`testkit.wrk` (load with
wrk). Not part of the package that is published.

Standard library only, so it loads anywhere the tests run, the release
rehearsal included (its tests keep the source tree off ``sys.path`` and load
this package by its path: ``release/conftest.py``).
"""

from .processes import (
    Server,
    ServerError,
    cpu_seconds,
    env_with_path,
    free_port,
    peak_rss_bytes,
    pinned,
    serving,
    status_kib,
    stop,
)
from .wrk import SUMMARY_SCRIPT, run_wrk, wrk_summary

__all__ = [
    "SUMMARY_SCRIPT",
    "Server",
    "ServerError",
    "cpu_seconds",
    "env_with_path",
    "free_port",
    "peak_rss_bytes",
    "pinned",
    "run_wrk",
    "serving",
    "status_kib",
    "stop",
    "wrk_summary",
]
