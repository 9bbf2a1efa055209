"""``wrk`` (Debian package ``wrk``) against a server on 127.0.0.1: run it for a
bounded time with a Lua script and hand back the line the script prints when
done. The saturation tests and ``benchmarks.overhead`` use :data:`SUMMARY_SCRIPT`
through :func:`wrk_summary`; ``benchmarks.load`` has a script of its own that
reports per worker, and only uses :func:`run_wrk`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from .processes import pinned

LOOPBACK = "http://127.0.0.1:"

#: wrk's Lua script (``.format(body=...)`` first): POST the body, print one
#: line of results at the end.
SUMMARY_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{body}]]
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d %d %.3f\\n", summary.requests,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(99) / 1000))
end
"""
SUMMARY_MARK = "RESULT "


def run_wrk(
    url: str,
    script: Path,
    *,
    mark: str,
    connections: int,
    seconds: float,
    threads: int = 1,
    executable: str = "wrk",
    env: dict[str, str] | None = None,
    cpu: int | None = None,
    request_timeout_s: float | None = None,
) -> str:
    """``wrk`` with ``script`` against ``url`` for ``seconds`` (whole, at least
    one) and what follows ``mark`` on the last line of its output that starts
    with it. ``cpu`` pins wrk to that CPU (:func:`pinned`);
    ``request_timeout_s`` replaces wrk's own (2 s, after which a request
    counts as a timeout error). Loopback only: this is a load generator."""
    if not url.startswith(LOOPBACK):
        raise ValueError(f"refusing to load-test {url}: only 127.0.0.1 is allowed")
    command = [
        *(pinned(cpu) if cpu is not None else []),
        executable,
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        *([f"--timeout={request_timeout_s:g}s"] if request_timeout_s is not None else []),
        f"--script={script}",
        url,
    ]
    # The minute beyond the duration bounds a wrk that hangs (a server that
    # stopped answering): the run fails instead of the caller waiting forever.
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=seconds + 60)
    lines = [line for line in done.stdout.splitlines() if line.startswith(mark)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return lines[-1].removeprefix(mark)


def wrk_summary(
    url: str, script: Path, connections: int, seconds: float, *, pin: bool = True
) -> dict[str, Any]:
    """One wrk thread posting :data:`SUMMARY_SCRIPT`'s body for ``seconds``,
    on CPU 1 with ``pin`` (the server on CPU 0): requests, errors (socket
    errors and non-2xx answers) and the 99th latency percentile."""
    line = run_wrk(
        url, script, mark=SUMMARY_MARK, connections=connections, seconds=seconds,
        cpu=1 if pin else None,
    )  # fmt: skip
    requests, connect, read, write, status, timeout, p99 = line.split()
    return {
        "requests": int(requests),
        "requests_per_second": int(requests) / seconds,
        "errors": int(connect) + int(read) + int(write) + int(status) + int(timeout),
        "p99_ms": float(p99),
    }
