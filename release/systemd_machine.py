"""The machine the systemd deployment tests boot (``test_deploy_systemd.py``,
``test_promote_rollback_systemd.py``): a podman container built from
``deploy/tests/systemd-vm.Containerfile`` (the local ``python:3.11-slim``
stand-in plus Debian's systemd), run with ``--systemd=always`` and
``--privileged``, and the few ways the tests talk to it and to the API it
serves.

Privileged because without CAP_SYS_ADMIN systemd silently skips the unit's
sandbox (no mount namespace, so ProtectSystem=, PrivateTmp= and the rest
would not be applied and a unit that breaks under them would pass). Host
networking, so the machine reaches the private index on 127.0.0.1 and the
tests reach the API on a free loopback port. Source trees are mounted
read-only, as the release tag's checkout an operator runs ``install.sh`` from.

A machine that cannot be booted here (no podman) skips, or fails when
``REQUIRE_DEPLOY=1`` or ``REQUIRE_RELEASE=1`` (``.ci/run`` sets both).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from index_fixtures import ROOT, Timings

IMAGE = "localhost/house-prices-systemd-vm:test"
CONTAINERFILE = ROOT / "deploy" / "tests" / "systemd-vm.Containerfile"
CHECKOUT = "/srv/checkout"  # where the machine sees this source tree
UNIT = "house-prices-api"
ENV_FILE = "/etc/house-prices-api/env"
STATE_DIR = "/var/lib/house-prices-api"
SERVICE_USER = "house-prices"
BOOT_SECONDS = 60
READY_SECONDS = 90
#: The machine's base image (the Containerfile's FROM), and how long pulling it may take.
BASE_IMAGE = "python:3.11-slim"
PULL_SECONDS = 300


def cannot_run(reason: str) -> None:
    for variable in ("REQUIRE_DEPLOY", "REQUIRE_RELEASE"):
        if os.environ.get(variable) == "1":
            pytest.fail(f"{reason} ({variable}=1: the systemd deployment test must run)")
    pytest.skip(reason)


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"`podman {' '.join(args)}` failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


@dataclass(frozen=True)
class Machine:
    """The booted container: commands run in it as root."""

    name: str

    def run(
        self, command: str, *, env: dict[str, str] | None = None, timeout: float = 60,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        options = [f"--env={k}={v}" for k, v in (env or {}).items()]
        return podman("exec", *options, self.name, "sh", "-c", command, timeout=timeout,
                      check=check)  # fmt: skip

    def out(self, command: str, **kwargs: Any) -> str:
        return self.run(command, **kwargs).stdout.strip()

    def show(self, *properties: str) -> dict[str, str]:
        options = " ".join(f"-p {p}" for p in properties)
        text = self.out(f"systemctl show {options} {UNIT}")
        return dict(line.split("=", 1) for line in text.splitlines())

    def journal(self, since_cursor: str | None = None) -> list[str]:
        after = f"--after-cursor='{since_cursor}'" if since_cursor else ""
        return self.out(f"journalctl -u {UNIT} -o cat --no-pager {after}").splitlines()

    def cursor(self) -> str:
        # The journal's position now: what follows it is what comes next.
        return self.out("journalctl -n 0 --show-cursor --no-pager").rsplit("cursor: ", 1)[-1]


def http(
    url: str, body: object = None, headers: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read() or b"null")
            return response.status, _lower(response.headers), answer
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers), json.loads(error.read() or b"null")


def _lower(headers: Message) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def wait_ready(base: str, seconds: float = READY_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, _, body = http(base + "/api/v1/ready", timeout=5)
            if status == 200 and body.get("ready") is True:
                return
            last = (status, body)
        except (urllib.error.URLError, OSError) as error:
            last = error
        time.sleep(0.5)
    pytest.fail(f"{base}/api/v1/ready did not answer ready within {seconds} s: {last}")


def numerics_settings() -> list[str]:
    """This process's numpy SIMD level and BLAS kernel (.ci/run's second pass
    forces both) as env-file lines: numpy's AVX-512 and AVX2 logarithms differ
    in the last bit, and the service's prices are compared exactly with prices
    computed here."""
    return [
        f'{name}="{value}"'
        for name, value in os.environ.items()
        if name == "NPY_DISABLE_CPU_FEATURES" or name.startswith("OPENBLAS_")
    ]


def _base_image_or_skip() -> None:
    """The base image is here (CI's local stand-in), or pulled now; else skip
    (or fail, as ``cannot_run`` does), rather than fail the ``--pull=never``
    build. (``api/tests/tooling.py`` does the same for the other container
    tests; this file cannot import it: the release tests run with the source
    tree off ``sys.path``.)"""
    assert f"FROM {BASE_IMAGE}" in CONTAINERFILE.read_text()
    if podman("image", "inspect", BASE_IMAGE, check=False).returncode == 0:
        return
    try:
        pulled = podman("pull", BASE_IMAGE, timeout=PULL_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        cannot_run(f"{BASE_IMAGE} is not here and `podman pull` took over {PULL_SECONDS} s")
        return
    if pulled.returncode != 0:
        said = pulled.stderr.strip().splitlines()
        cannot_run(
            f"{BASE_IMAGE} is not here and `podman pull` failed "
            f"({said[-1][-300:] if said else pulled.returncode}); in CI, "
            '`eval "$(../shared/ci/offline-container-base.sh)"` provides a local stand-in'
        )


@contextlib.contextmanager
def booted_machine(timings: Timings, mounts: dict[Path, str]) -> Iterator[Machine]:
    """A machine booted with each source tree of ``mounts`` read-only at its
    path there; removed on exit."""
    if shutil.which("podman") is None:
        cannot_run("podman is not installed (CI: ../shared/ci/offline-container-base.sh)")
    if podman("info", check=False).returncode != 0:
        cannot_run("`podman info` fails here")
    _base_image_or_skip()
    started = time.monotonic()
    # Cached by podman after the first build (only the layer with systemd).
    podman("build", "--pull=never", "-q", "-t", IMAGE, "-f", str(CONTAINERFILE),
           str(CONTAINERFILE.parent), timeout=600)  # fmt: skip
    timings.record("systemd_machine_image", started)

    started = time.monotonic()
    machine = Machine(f"house-prices-systemd-{uuid.uuid4().hex[:8]}")
    volumes = [f"--volume={source}:{target}:ro" for source, target in mounts.items()]
    podman("run", "-d", "--name", machine.name, "--systemd=always", "--privileged",
           "--network=host", *volumes, IMAGE)  # fmt: skip
    try:
        # Until systemd's bus is up, systemctl cannot even ask ("Failed to connect").
        deadline = time.monotonic() + BOOT_SECONDS
        while True:
            state = machine.run(
                "systemctl is-system-running --wait", timeout=BOOT_SECONDS, check=False
            )
            if "Failed to connect" not in state.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # degraded: a unit of the base system failed (shown below), not ours
        if state.stdout.strip() not in {"running", "degraded"}:
            failed = machine.run("systemctl --failed --no-pager", check=False).stdout
            pytest.fail(f"systemd did not boot: {state.stdout} {state.stderr}\n{failed}")
        timings.record("systemd_boot", started)
        yield machine
    finally:
        podman("rm", "-f", "-t", "0", machine.name, check=False)
