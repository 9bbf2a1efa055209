"""Start the API or the bare app on a free loopback port, time it to ready,
read its workers' resident memory, and always stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
READY_PATH = "/api/v1/ready"
PREDICT_PATH = "/api/v1/predict"
WORKER_PID_HEADER = "X-Worker-PID"

#: How each app is served: the API as in production, the bare app the same way.
COMMANDS = {
    "api": [sys.executable, "-m", "api"],
    "bare": [sys.executable, "-m", "benchmarks.bare_app"],
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    app: str
    workers: int
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    #: Seconds from starting the process to the first 200 from /api/v1/ready.
    first_ready_s: float = 0.0
    #: Seconds until every worker had answered /api/v1/ready with 200.
    all_ready_s: float = 0.0
    worker_pids: set[str] = field(default_factory=set)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def rss_mb(pid: int) -> float | None:
    """Resident memory of a live process in MB (10^6 bytes; ``VmRSS`` in
    /proc, given in KiB), or None."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    return None


def _probe(url: str) -> str | None:
    """The worker PID of a 200 from /ready over a new connection, else None."""
    try:
        response = httpx.get(url + READY_PATH, timeout=5)
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    return str(response.headers.get(WORKER_PID_HEADER, "?"))


def _wait_until_ready(server: Server, started: float, timeout_s: float) -> None:
    """Poll /ready with new connections (each may reach any worker) until every
    worker has answered 200."""
    deadline = started + timeout_s
    while len(server.worker_pids) < server.workers:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.app} exited early:\n{server.output()[-3000:]}")
        pid = _probe(server.url)
        if pid is not None:
            now = time.perf_counter()
            if not server.worker_pids:
                server.first_ready_s = now - started
            server.worker_pids.add(pid)
            server.all_ready_s = now - started
        elif time.perf_counter() > deadline:
            raise RuntimeError(f"{server.app} not ready in {timeout_s} s:\n{server.output()}")
        else:
            time.sleep(0.01)


@contextmanager
def running(app: str, workers: int, log: Path, timeout_s: float = 60.0) -> Iterator[Server]:
    """``app`` (``api`` or ``bare``) with ``workers`` processes on a free
    loopback port, ready; stopped with SIGTERM (then SIGKILL) afterwards."""
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    command = [
        *COMMANDS[app],
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with log.open("wb") as handle:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server = Server(app, workers, process, f"http://127.0.0.1:{port}", log)
        try:
            _wait_until_ready(server, started, timeout_s)
            yield server
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGTERM and wait; if that is not enough, SIGKILL the whole process group
    (the server's workers included)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            print(f"pid {process.pid} ignored SIGTERM for {timeout_s} s: killing it")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # any worker left behind
    process.wait()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (``/proc/<pid>/stat``), or 0."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(server: Server, timeout_s: float = 120.0) -> float:
    """Wait until the server's processes stop using CPU: when wrk stops, the
    requests it leaves unanswered are still being worked on, and would slow
    down whatever is measured next. Returns the seconds waited."""
    pids = {server.process.pid} | {int(pid) for pid in server.worker_pids if pid.isdigit()}
    started = time.perf_counter()
    used = sum(_cpu_seconds(pid) for pid in pids)
    while time.perf_counter() - started < timeout_s:
        time.sleep(0.25)
        now = sum(_cpu_seconds(pid) for pid in pids)
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
                    f"{server.app}: warm-up got {response.status_code}: {response.text[:500]}"
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
