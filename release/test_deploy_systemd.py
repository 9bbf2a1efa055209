"""The systemd deployment (``deploy/systemd/``), booted for real: the published
wheel, from the private index, installed on a Debian machine with systemd as
PID 1 by ``install.sh`` exactly as ``deploy/systemd/README.md`` says.

The machine (``systemd_machine.py``) is a podman container built from
``deploy/tests/systemd-vm.Containerfile``
(the local ``python:3.11-slim`` stand-in plus Debian's systemd), run with
``--systemd=always`` and ``--privileged``. Privileged because without
CAP_SYS_ADMIN systemd silently skips the unit's sandbox (no mount namespace,
so ProtectSystem=, PrivateTmp= and the rest would not be applied and a unit
that breaks under them would pass); the test checks the sandbox is in force.
Host networking, so the machine reaches the index on 127.0.0.1 and the test
reaches the API on a free loopback port. The checkout is mounted read-only,
as the release tag's checkout an operator would run the script from.

It lives in ``tox -e release`` and not ``tox -e deploy`` because it needs the
rehearsal's private index holding the published wheel (``index_fixtures.py``),
and publishing (building and testing the wheel) takes minutes: the two tests
share one index, one publication and one mirror.

Skips without podman, or fails when ``REQUIRE_DEPLOY=1`` or
``REQUIRE_RELEASE=1`` (``.ci/run`` sets both).
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from index_fixtures import ROOT, USER, VERSION, PrivateIndex, Timings
from systemd_machine import (
    CHECKOUT,
    ENV_FILE,
    SERVICE_USER,
    STATE_DIR,
    UNIT,
    Machine,
    booted_machine,
    http,
    numerics_settings,
    wait_ready,
)

from regression_model.config.core import get_config
from regression_model.data import load_dataset
from regression_model.predict import make_prediction
from testkit import free_port

WORKERS = 2
API_KEY = "deploy-test-key"
#: The unit's TimeoutStopSec; a graceful stop must end well within it.
STOP_TIMEOUT_SECONDS = 30
#: systemd-analyze security's overall exposure (0 best, 10 worst) the unit must keep.
MAX_EXPOSURE = 2.0


@dataclass(frozen=True)
class Deployed:
    machine: Machine
    base: str
    install_output: str
    timings: Timings


@pytest.fixture(scope="module")
def machine(timings: Timings) -> Iterator[Machine]:
    with booted_machine(timings, {ROOT: CHECKOUT}) as machine:
        timings.facts["systemd_machine"] = {
            "systemd": machine.out("systemctl --version").splitlines()[0],
            "debian": machine.out("cat /etc/debian_version"),
        }
        yield machine


@pytest.fixture(scope="module")
def deployed(
    machine: Machine,
    private_index: PrivateIndex,
    mirrored_dependencies: list[str],
    timings: Timings,
) -> Deployed:
    """README steps: install (not started), configure, start."""
    index_url = private_index.simple_url_with_credentials
    script = f"{CHECKOUT}/deploy/systemd/install.sh"
    started = time.monotonic()
    installed = machine.run(script, env={"INDEX_URL": index_url, "NO_START": "1"}, timeout=900)
    timings.record("systemd_install", started)
    output = installed.stdout + installed.stderr

    # Configure (README "Configure"): the port and address this test can use,
    # an API key, two workers.
    port = free_port()
    machine.run(
        f"sed -i -e 's/^PORT=.*/PORT={port}/' -e 's/^HOST=.*/HOST=127.0.0.1/' "
        f"-e 's/^WEB_CONCURRENCY=.*/WEB_CONCURRENCY={WORKERS}/' "
        f"-e 's/^#API_KEY=.*/API_KEY={API_KEY}/' {ENV_FILE}"
    )
    numerics = numerics_settings()
    if numerics:
        machine.run(f"printf '%s\\n' {shlex.join(numerics)} >> {ENV_FILE}")
    started = time.monotonic()
    machine.run(f"systemctl start {UNIT}")
    base = f"http://127.0.0.1:{port}"
    wait_ready(base)
    timings.record("systemd_start_to_ready", started)
    return Deployed(machine, base, output, timings)


def test_install_uses_the_private_index_only(
    deployed: Deployed, private_index: PrivateIndex
) -> None:
    looked_in = [line for line in deployed.install_output.splitlines() if "Looking in" in line]
    assert looked_in, deployed.install_output[-3000:]
    for line in looked_in:
        # pip shows the URL with the password masked; one index, no other
        assert (
            line
            == f"Looking in indexes: http://{USER}:****@127.0.0.1:{private_index.port}/simple/"
        )
    assert private_index.password not in deployed.install_output
    assert f"ames-regression-model-{VERSION}" in deployed.install_output


def test_the_unit_verifies_and_its_sandbox_scores(deployed: Deployed) -> None:
    machine = deployed.machine
    # verify exits 0 even on unknown or misplaced keys; any output is a finding.
    verify = machine.run(f"systemd-analyze verify /etc/systemd/system/{UNIT}.service", check=False)
    assert verify.returncode == 0 and not (verify.stdout + verify.stderr).strip(), verify
    security = machine.out(f"systemd-analyze security --no-pager {UNIT}")
    match = re.search(rf"Overall exposure level for {UNIT}\.service: ([0-9.]+) (\w+)", security)
    assert match, security
    deployed.timings.facts["systemd_security_exposure"] = f"{match[1]} {match[2]}"
    assert float(match[1]) <= MAX_EXPOSURE, security


def test_files_are_in_place_with_their_owners_and_modes(deployed: Deployed) -> None:
    machine = deployed.machine
    assert machine.out(f"stat -c '%a %U %G' {ENV_FILE}") == "640 root root"
    assert machine.out(f"systemctl is-enabled {UNIT}") == "enabled"
    release = machine.out("readlink /opt/house-prices-api/current")
    assert re.fullmatch(rf"releases/{re.escape(VERSION)}-[0-9a-f]{{12}}", release), release
    # The code and the venv: root's, and nothing writable by anyone else.
    loose = machine.out("find /opt/house-prices-api ! -user root -o -perm /022 ! -type l")
    assert loose == "", loose
    tests_copied = machine.run("test -e /opt/house-prices-api/current/app/api/tests", check=False)
    assert tests_copied.returncode != 0, "api/tests was copied into the release"
    # A rerun of the script changes nothing and restarts nothing; the edited
    # settings are kept.
    env_before = machine.out(f"cat {ENV_FILE}")
    pid_before = deployed.machine.show("MainPID")["MainPID"]
    again = machine.run(
        f"{CHECKOUT}/deploy/systemd/install.sh", env={"INDEX_URL": "http://127.0.0.1:9/simple/"}
    )
    assert f"release {release.split('/')[1]} is already installed" in again.stdout, again.stdout
    assert machine.out(f"cat {ENV_FILE}") == env_before
    assert deployed.machine.show("MainPID")["MainPID"] == pid_before


def test_the_service_runs_unprivileged_inside_its_sandbox(deployed: Deployed) -> None:
    machine = deployed.machine
    shown = machine.show("MainPID", "ActiveState", "User")
    assert shown["ActiveState"] == "active" and shown["User"] == SERVICE_USER
    main = shown["MainPID"]
    uid = machine.out(f"id -u {SERVICE_USER}")
    assert int(uid) > 0
    # Every process of the unit (the supervisor, its workers, their helpers).
    processes = machine.out(
        "cat $(find /sys/fs/cgroup/systemd -path "
        f"'*/system.slice/{UNIT}.service/cgroup.procs' | head -n1)"
    ).split()
    assert len(processes) >= 1 + WORKERS, processes
    for pid in processes:
        uids = machine.out(f"grep '^Uid:' /proc/{pid}/status").split()[1:]
        assert uids == [uid] * 4, (pid, uids)
    # The sandbox is applied: its own mount namespace, the system read-only.
    assert machine.out(f"readlink /proc/{main}/ns/mnt") != machine.out("readlink /proc/1/ns/mnt")
    mounts = machine.out(f"cat /proc/{main}/mountinfo").splitlines()
    root = next(line.split() for line in mounts if line.split()[4] == "/")
    assert "ro" in root[5].split(","), root


def test_it_prices_exactly_as_the_package_and_logs_to_the_journal_and_sqlite(
    deployed: Deployed,
) -> None:
    machine = deployed.machine
    houses = load_dataset(get_config().app.test_data_file)  # as the API tests read it
    expected = make_prediction(input_data=houses)["predictions"]
    payload = {"inputs": houses.astype(object).where(houses.notna(), None).to_dict("records")}
    url = deployed.base + "/api/v1/predict"

    status, _, _ = http(url, payload)
    assert status == 401, "API_KEY from the environment file is not in force"
    status, headers, body = http(url, payload, {"X-API-Key": API_KEY}, timeout=120)
    assert status == 200, body
    assert body["predictions"] == expected
    request_id = headers["x-request-id"]

    # The JSON log lines, in the journal under the unit.
    deadline = time.monotonic() + 10
    mine: list[dict[str, Any]] = []
    while not mine and time.monotonic() < deadline:
        entries = [json.loads(line) for line in machine.journal() if line.startswith("{")]
        mine = [e for e in entries if e.get("request_id") == request_id]
        time.sleep(0.2)
    assert mine, "no JSON log line of the request in `journalctl -u house-prices-api`"
    assert all(e["level"] and e["logger"] and e["ts"] for e in mine)

    # The prediction log: SQLite in the state directory, owned by the service user.
    database = f"{STATE_DIR}/predictions.sqlite3"
    count = (
        "import sqlite3, sys, time\n"
        "for _ in range(100):\n"
        f"    db = sqlite3.connect('file:{database}?mode=ro', uri=True)\n"
        "    rows = db.execute('select count(*), sum(price) from predictions '\n"
        "                      'where request_id = ?', (sys.argv[1],)).fetchone()\n"
        f"    if rows[0] == {len(houses)}: break\n"
        "    time.sleep(0.1)\n"
        "print(rows[0], repr(rows[1]))\n"
    )
    logged, total = machine.out(f"python3 -c {_quote(count)} {request_id}").split()
    assert int(logged) == len(houses)
    priced = [price for price in expected if price is not None]
    assert len(priced) == len(houses)
    assert float(total) == pytest.approx(sum(priced), rel=1e-12)
    assert machine.out(f"stat -c '%U %a' {database} {STATE_DIR}").splitlines() == [
        f"{SERVICE_USER} 600",  # UMask=0077
        f"{SERVICE_USER} 750",
    ]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def test_systemd_restarts_it_after_sigkill(deployed: Deployed) -> None:
    machine = deployed.machine
    before = machine.show("MainPID", "NRestarts")
    machine.run(f"systemctl kill --kill-whom=main --signal=SIGKILL {UNIT}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = machine.show("MainPID", "NRestarts", "ActiveState")
        if now["ActiveState"] == "active" and now["MainPID"] not in {"0", before["MainPID"]}:
            break
        time.sleep(0.2)
    assert now["ActiveState"] == "active" and now["MainPID"] not in {"0", before["MainPID"]}, now
    assert int(now["NRestarts"]) == int(before["NRestarts"]) + 1
    wait_ready(deployed.base)
    journal = machine.journal()
    assert f"{UNIT}.service: Main process exited, code=killed, status=9/KILL" in journal


def test_systemctl_stop_drains_and_exits_cleanly(deployed: Deployed) -> None:
    """Runs last: SIGTERM to the supervisor, each worker finishes and closes
    the prediction log, the supervisor exits 0, well within TimeoutStopSec."""
    machine = deployed.machine
    cursor = machine.cursor()
    started = time.monotonic()
    machine.run(f"systemctl stop {UNIT}", timeout=STOP_TIMEOUT_SECONDS + 30)
    elapsed = time.monotonic() - started
    deployed.timings.facts["systemd_stop_seconds"] = round(elapsed, 2)
    shown = machine.show("ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    # ExecMainCode 1 is CLD_EXITED: the process exited by itself, status 0.
    assert shown == {
        "ActiveState": "inactive", "Result": "success", "ExecMainCode": "1", "ExecMainStatus": "0",
    }, shown  # fmt: skip
    assert elapsed < STOP_TIMEOUT_SECONDS - 5, elapsed
    lines = machine.journal(cursor)
    messages = [json.loads(line)["message"] for line in lines if line.startswith("{")]
    assert messages.count("Application shutdown complete.") == WORKERS, lines
    assert messages.count("prediction log closed") == WORKERS, lines
    assert any(m.startswith("Stopping parent process") for m in messages), lines
    assert not [line for line in lines if "timed out" in line or "Failed with result" in line]
