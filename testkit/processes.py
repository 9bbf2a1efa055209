"""The processes that tests, benchmarks, the release rehearsal and the
deployment measurements run around the API: a free loopback port, a server
started and waited for until every worker answers, stopped with SIGTERM and a
bounded wait, and what a process has used (CPU seconds, resident memory).

Standard library only (HTTP probes use ``urllib``): the release tests load
this package without the source tree on ``sys.path`` and without the API's
requirements (``release/conftest.py``).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

#: The API's readiness route: 200 once the worker answering has its model.
READY_PATH = "/api/v1/ready"
#: The response header naming the worker process that answered.
WORKER_PID_HEADER = "X-Worker-PID"
#: How long a server may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 30.0

# Probes go straight to 127.0.0.1: an http_proxy in the environment must not
# carry them elsewhere.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerError(RuntimeError):
    """A server exited before it was ready, was not ready in time, or did not
    stop on SIGTERM; the message holds the end of its output."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel picks it; another process
    could still take it before the caller binds it, which the callers accept)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pinned(cpu: int) -> list[str]:
    """``taskset -c cpu`` when there are two CPUs or more, so a server and its
    load generator do not take turns on one core; else nothing."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


def env_with_path(directory: Path, **extra: str) -> dict[str, str]:
    """This process's environment with ``directory`` first on ``PYTHONPATH``
    (a child started elsewhere still imports the checkout), plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(directory), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (all its threads) so far, from
    ``/proc/<pid>/stat``; OSError once it is gone."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid: int, name: str) -> int:
    """A memory field of ``/proc/<pid>/status`` (``VmRSS`` now, ``VmHWM`` the
    peak) in KiB; OSError once the process is gone."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise LookupError(f"{name} not in /proc/{pid}/status")


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (Linux gives ``ru_maxrss``
    in KiB; callers choose MB or MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    #: Named in errors ("api", "bare"; "server" when there is one kind).
    name: str = "server"
    workers: int = 1
    #: Seconds from starting the process to the first 200 from READY_PATH.
    first_ready_s: float = 0.0
    #: Seconds until every worker had answered READY_PATH with 200.
    all_ready_s: float = 0.0
    worker_pids: set[str] = field(default_factory=set)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _ready_worker(url: str) -> str | None:
    """The worker PID of a 200 from READY_PATH, else None. A new connection
    each time: one kept open would keep reaching the same worker."""
    try:
        with _direct.open(url + READY_PATH, timeout=5) as response:
            return str(response.headers.get(WORKER_PID_HEADER, "?"))
    except (OSError, http.client.HTTPException):  # refused, reset, not 200 (HTTPError)
        return None


def _wait_until_ready(server: Server, started: float, timeout_s: float, poll_s: float) -> None:
    deadline = started + timeout_s
    while len(server.worker_pids) < server.workers:
        if server.process.poll() is not None:
            raise ServerError(f"{server.name} exited early:\n{server.output()[-3000:]}")
        pid = _ready_worker(server.url)
        if pid is not None:
            now = time.perf_counter()
            if not server.worker_pids:
                server.first_ready_s = now - started
            server.worker_pids.add(pid)
            server.all_ready_s = now - started
        elif time.perf_counter() > deadline:
            raise ServerError(f"{server.name} not ready in {timeout_s} s:\n{server.output()}")
        else:
            time.sleep(poll_s)


def stop(
    process: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S, *, group: bool = False
) -> int | None:
    """SIGTERM, then wait at most ``timeout_s``: the exit status, or None when
    SIGTERM was not enough and the process was killed. With ``group`` (the
    process leads its own session) whatever is left of its process group is
    SIGKILLed too, so no worker outlives its supervisor."""
    code = process.poll()
    if code is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = process.wait(timeout_s)
    if group:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    if code is None:
        process.kill()
    process.wait()
    return code


def _refuse(message: str) -> None:
    raise ServerError(message)


@contextmanager
def serving(
    command: Sequence[str],
    log: Path,
    *,
    workers: int = 1,
    name: str = "server",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 60.0,
    poll_s: float = 0.05,
    group: bool = False,
    on_kill: Callable[[str], None] = _refuse,
) -> Iterator[Server]:
    """``command --host 127.0.0.1 --port <free> --workers N``, its output in
    ``log``, yielded once every worker has answered READY_PATH with 200 (each
    loads its own model); stopped with SIGTERM afterwards.

    ``group`` starts it in its own session and kills what is left of it after
    (see :func:`stop`). A server that needed SIGKILL is passed to ``on_kill``,
    which raises ServerError unless the caller chooses otherwise (a long
    benchmark prints it rather than lose the run)."""
    port = free_port()
    argv = [*command, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with log.open("wb") as handle:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=group,
        )  # fmt: skip
        server = Server(process, f"http://127.0.0.1:{port}", log, name, workers)
        try:
            _wait_until_ready(server, started, timeout_s, poll_s)
            yield server
        finally:
            if stop(process, group=group) is None:
                on_kill(f"{name} (pid {process.pid}) ignored SIGTERM for {STOP_TIMEOUT_S} s")
