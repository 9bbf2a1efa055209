"""A throwaway PostgreSQL server on loopback, from Debian's ``postgresql``
binaries: ``initdb`` into a new directory, ``pg_ctl`` start and stop.

Used by the prediction-log tests (the outage test stops and restarts its own
server) and by ``.ci/run``, which starts one for the whole run::

    eval "$(python3 api/tests/postgres.py start /tmp/ci-postgres)"   # exports TEST_DATABASE_URL
    python3 api/tests/postgres.py stop /tmp/ci-postgres

PostgreSQL refuses to run as root: as root, the server runs as the
``postgres`` user (``runuser``). It listens on 127.0.0.1 only, on a free
port, and trusts connections from there (a test server with no data).
Standard library only, so ``.ci/run`` can use it before any virtualenv exists.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script (.ci/run): the repository root is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from testkit.processes import free_port

USER = "house_prices"
DATABASE = "house_prices_test"


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory (or $TEST_POSTGRES_BIN)."""
    given = os.environ.get("TEST_POSTGRES_BIN")
    if given:
        return Path(given)
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    return Path(found[-1]).parent if found else None


class Cluster:
    """One server: its directory, port, and the commands to run it."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            raise FileNotFoundError("no PostgreSQL binaries (Debian: apt-get install postgresql)")
        self.bin = bin_dir
        self.directory = directory
        self.data = directory / "data"
        self.port_file = directory / "port"
        if port is None and self.port_file.exists():
            port = int(self.port_file.read_text())
        self.port = port or free_port()

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(
            [*prefix, *command], capture_output=True, text=True, check=check, timeout=120
        )

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self.port_file.write_text(str(self.port))
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.directory} -c fsync=off"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.directory / "log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False
        )

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = self._run(
            str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
            "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql,
        )  # fmt: skip
        return done.stdout.strip()

    def create_database(self, name: str = DATABASE, owner: str = USER) -> str:
        """A role and a database it owns; returns its URL."""
        if not self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{owner}'"):
            self.psql(f"CREATE ROLE {owner} LOGIN CREATEDB")
        self.psql(f"CREATE DATABASE {name} OWNER {owner}")
        return self.url(name, owner)

    def url(self, database: str = DATABASE, user: str = USER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def wait_stopped(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.1)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print(f"usage: {sys.argv[0]} start|stop DIRECTORY", file=sys.stderr)
        return 2
    cluster = Cluster(Path(argv[1]))
    if argv[0] == "start":
        cluster.init()
        cluster.start()
        url = cluster.create_database()
        print(f"export TEST_DATABASE_URL={url}")
        print(f"export TEST_POSTGRES_BIN={cluster.bin}")
    else:
        cluster.remove()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
