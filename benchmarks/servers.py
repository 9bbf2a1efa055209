"""Start the API or the bare app on a free loopback port (``testkit.serving``:
timed to ready, always stopped), read its workers' resident memory, and wait
until it is idle between measurements."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from testkit.processes import (
    WORKER_PID_HEADER,
    Server,
    cpu_seconds,
    env_with_path,
    serving,
    status_kib,
)

ROOT = Path(__file__).resolve().parent.parent
PREDICT_PATH = "/api/v1/predict"

#: How each app is served: the API as in production, the bare app the same way.
COMMANDS = {
    "api": [sys.executable, "-m", "api"],
    "bare": [sys.executable, "-m", "benchmarks.bare_app"],
}


def rss_mb(pid: int) -> float | None:
    """Resident memory of a live process in MB (10^6 bytes; ``VmRSS`` in
    /proc, given in KiB), or None."""
    try:
        return status_kib(pid, "VmRSS") * 1024 / 1e6
    except (OSError, LookupError):
        return None


@contextmanager
def running(app: str, workers: int, log: Path, timeout_s: float = 60.0) -> Iterator[Server]:
    """``app`` (``api`` or ``bare``) with ``workers`` processes on a free
    loopback port, ready; stopped with SIGTERM (then SIGKILL) afterwards. Its
    own session, so no worker outlives it into the next measurement; a server
    that needed SIGKILL is reported, not raised, so the run is not lost."""
    with serving(
        COMMANDS[app], log, workers=workers, name=app, env=env_with_path(ROOT), cwd=ROOT,
        timeout_s=timeout_s, poll_s=0.01, group=True,
        on_kill=lambda message: print(f"{message}: killed it"),
    ) as server:  # fmt: skip
        yield server


def _cpu_seconds(pids: Iterable[int]) -> float:
    """CPU seconds the processes have used; one that has exited counts 0."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def wait_until_idle(server: Server, timeout_s: float = 120.0) -> float:
    """Wait until the server's processes stop using CPU: when wrk stops, the
    requests it leaves unanswered are still being worked on, and would slow
    down whatever is measured next. Returns the seconds waited."""
    pids = {server.process.pid} | {int(pid) for pid in server.worker_pids if pid.isdigit()}
    started = time.perf_counter()
    used = _cpu_seconds(pids)
    while time.perf_counter() - started < timeout_s:
        time.sleep(0.25)
        now = _cpu_seconds(pids)
        if now - used < 0.025:  # under a tenth of a core
            break
        used = now
    return time.perf_counter() - started


def warm_up(server: Server, bodies: list[bytes], requests: int) -> None:
    """``requests`` POSTs of each body, each over a new connection (so both
    workers get some); each must answer 200. Records the worker PIDs seen."""
    for body in bodies:
        for _ in range(requests):
            response = httpx.post(
                server.url + PREDICT_PATH,
                content=body,
                headers={"Content-Type": "application/json"},
                timeout=60,
            )
            if response.status_code != 200:
                raise RuntimeError(
                    f"{server.name}: warm-up got {response.status_code}: {response.text[:500]}"
                )
            server.worker_pids.add(response.headers.get(WORKER_PID_HEADER, "?"))


def memory(server: Server) -> dict[str, object]:
    """Resident memory (MB) of each worker, and of the supervisor when there
    are several workers (uvicorn then runs them as children of the process
    started)."""
    workers = {pid: rss_mb(int(pid)) for pid in sorted(server.worker_pids) if pid.isdigit()}
    supervisor = None
    if str(server.process.pid) not in server.worker_pids:
        supervisor = rss_mb(server.process.pid)
    return {"worker_rss_mb": workers, "supervisor_rss_mb": supervisor}
