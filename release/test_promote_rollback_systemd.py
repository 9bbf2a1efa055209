"""Promotion and rollback on the systemd recipe, booted for real: a release is
promoted by installing it, and rolled back by serving the previous release
again (``deploy/systemd/README.md``, "Upgrade" and "Roll back").

The previous model version is rebuilt from git, as its release was: its
release's tree (``git archive`` of its tag, else of the commit pinned in
``PREVIOUS_COMMIT``), trained there with its own code and config, its wheel
built and put in the private index beside this run's published wheel (an
index keeps every version). Both trees are mounted read-only in one machine
(``systemd_machine.py``), as two checkouts of release tags, and the operator's
steps run in order:

1. ``install.sh`` from the previous tree: it serves the previous version, and
   every house of test.csv gets exactly the price that version's own package
   gives it (computed here from its tree, in a child process), with no ranges;
2. roll forward, ``install.sh`` from this tree: the new release is built
   beside the running one and the service restarted on it; the prices are
   exactly this version's, and the price ranges appear;
3. roll back, the README's way: ``current`` pointed at the previous release,
   still on disk, and a restart: the previous prices again, to the bit;
4. forward and back again with ``install.sh`` alone, which finds each release
   built and only switches and restarts.

It needs git history (the previous version's commit), the private index of
``tox -e release`` and podman: what is missing skips, or fails with
``REQUIRE_RELEASE=1`` (``.ci/run``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from index_fixtures import ROOT, VERSION, PrivateIndex, Timings, cannot_run
from systemd_machine import (
    CHECKOUT,
    ENV_FILE,
    STATE_DIR,
    UNIT,
    Machine,
    booted_machine,
    http,
    numerics_settings,
    wait_ready,
)

from regression_model.config.core import get_config
from regression_model.data import dataset_path
from regression_model.predict import make_prediction
from testkit import free_port

#: The release before this one, rolled forward from and back to: its tag
#: v<version> when the repository has it, else this commit. (The repository
#: has no tags: 8bf20f1 is 0.2.0 as served when the 0.3.0 work began, the last
#: commit before the price ranges; the commits after it still say 0.2.0 in
#: VERSION but were never released.) Move both on at each release.
PREVIOUS_VERSION = "0.2.0"
PREVIOUS_COMMIT = "8bf20f1cea4505b5099efe7e0553d05fd3af7322"
#: Where the machine sees the previous version's tree.
PREVIOUS_CHECKOUT = "/srv/previous"
API_KEY = "rollback-test-key"
RELEASES = "/opt/house-prices-api/releases"
CURRENT = "/opt/house-prices-api/current"
#: A build of the previous version: training it and building its wheel.
BUILD_SECONDS = 600
#: Prices, as the previous tree's own package computes them, of the houses of a
#: CSV read as load_dataset reads it: JSON, exact (floats as repr).
PREVIOUS_PRICES = """
import json, sys
import pandas as pd
from regression_model.predict import make_prediction
result = make_prediction(input_data=pd.read_csv(sys.argv[1]))
print(json.dumps({"version": result["version"], "predictions": result["predictions"]}))
"""


def _git(*args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        cannot_run(f"`git {' '.join(args)}` failed: {result.stderr.strip()[-300:]}")
    return result.stdout.strip()


def _previous_release_commit() -> str:
    """The previous release's commit: its tag, else the commit pinned here."""
    tagged = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"v{PREVIOUS_VERSION}^{{commit}}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    commit = tagged.stdout.strip() if tagged.returncode == 0 else PREVIOUS_COMMIT
    _git("cat-file", "-e", f"{commit}^{{commit}}")  # a shallow clone lacks it: skip
    return commit


def _child_env(tree: Path) -> dict[str, str]:
    """Python importing the package of ``tree`` and nothing of this one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGRESSION_MODEL_")}
    env["PYTHONPATH"] = str(tree)
    return env


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_SECONDS,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, (command, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout


@dataclass(frozen=True)
class PreviousRelease:
    version: str
    commit: str
    tree: Path
    #: Its own package's prices of test.csv, in order (None: refused).
    predictions: list[float | None]


@pytest.fixture(scope="module")
def previous(workdir: Path, private_index: PrivateIndex, timings: Timings) -> PreviousRelease:
    """The previous version rebuilt from git: trained, its wheel in the index."""
    started = time.monotonic()
    commit, version = _previous_release_commit(), PREVIOUS_VERSION
    assert _git("show", f"{commit}:regression_model/VERSION") == version != VERSION
    tree = workdir / f"previous-{version}"
    archive = workdir / f"previous-{version}.tar"
    _git("archive", "--format=tar", f"--output={archive}", commit)
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    env = _child_env(tree)
    _run([sys.executable, "-m", "regression_model", "train"], tree, env)
    wheels = workdir / f"previous-{version}-wheel"
    # pip builds it in isolation, with the tree's own build requirements.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), "."],
         tree, env)  # fmt: skip
    (wheel,) = wheels.glob(f"*-{version}-*.whl")
    (private_index.packages / wheel.name).write_bytes(wheel.read_bytes())
    houses = dataset_path(get_config().app.test_data_file)
    priced = json.loads(_run([sys.executable, "-c", PREVIOUS_PRICES, str(houses)], tree, env))
    assert priced["version"] == version
    timings.record("rollback_previous_release_build", started)
    timings.facts["rollback_previous_version"] = f"{version} ({commit[:12]})"
    return PreviousRelease(version, commit, tree, priced["predictions"])


@dataclass(frozen=True)
class Service:
    machine: Machine
    base: str
    index_url: str


@pytest.fixture(scope="module")
def service(
    previous: PreviousRelease,
    private_index: PrivateIndex,
    mirrored_dependencies: list[str],
    timings: Timings,
) -> Iterator[Service]:
    mounts = {ROOT: CHECKOUT, previous.tree: PREVIOUS_CHECKOUT}
    with booted_machine(timings, mounts) as machine:
        yield Service(
            machine, f"http://127.0.0.1:{free_port()}", private_index.simple_url_with_credentials
        )


def _install(service: Service, checkout: str, **env: str) -> str:
    installed = service.machine.run(
        f"{checkout}/deploy/systemd/install.sh",
        env={"INDEX_URL": service.index_url, **env},
        timeout=900,
    )
    return installed.stdout + installed.stderr


def _priced(service: Service) -> dict[str, Any]:
    """Every house of test.csv, priced by the service (after a restart: once ready)."""
    wait_ready(service.base)
    houses = _test_houses()
    payload = {"inputs": houses.astype(object).where(houses.notna(), None).to_dict("records")}
    status, _, body = http(
        service.base + "/api/v1/predict", payload, {"X-API-Key": API_KEY}, timeout=120
    )
    assert status == 200, body
    answer: dict[str, Any] = body
    return answer


def _test_houses() -> pd.DataFrame:
    return pd.read_csv(dataset_path(get_config().app.test_data_file))


def _serves_previous(service: Service, previous: PreviousRelease) -> None:
    body = _priced(service)
    assert body["version"] == previous.version
    assert body["predictions"] == previous.predictions
    assert body.get("intervals") is None, "the previous version answered price ranges"
    release = service.machine.out(f"readlink {CURRENT}")
    assert re.fullmatch(rf"releases/{re.escape(previous.version)}-[0-9a-f]{{12}}", release)


def _serves_current(service: Service) -> None:
    body = _priced(service)
    expected = make_prediction(input_data=_test_houses())
    assert body["version"] == VERSION == expected["version"]
    assert body["predictions"] == expected["predictions"]
    assert body["intervals"] == expected["intervals"]
    assert any(ranges for ranges in body["intervals"]), "no price ranges served"
    release = service.machine.out(f"readlink {CURRENT}")
    assert re.fullmatch(rf"releases/{re.escape(VERSION)}-[0-9a-f]{{12}}", release)


def test_the_previous_version_serves_its_own_prices(
    service: Service, previous: PreviousRelease, timings: Timings
) -> None:
    assert previous.version != VERSION
    started = time.monotonic()
    output = _install(service, PREVIOUS_CHECKOUT, NO_START="1")
    assert f"ames-regression-model-{previous.version}" in output, output[-3000:]
    timings.record("rollback_install_previous", started)
    port = service.base.rsplit(":", 1)[1]
    machine = service.machine
    machine.run(
        f"sed -i -e 's/^PORT=.*/PORT={port}/' -e 's/^HOST=.*/HOST=127.0.0.1/' "
        f"-e 's/^#API_KEY=.*/API_KEY={API_KEY}/' {ENV_FILE}"
    )
    numerics = numerics_settings()
    if numerics:
        machine.run(f"printf '%s\\n' {shlex.join(numerics)} >> {ENV_FILE}")
    machine.run(f"systemctl start {UNIT}")
    _serves_previous(service, previous)


def test_rolling_forward_serves_the_new_prices_and_ranges(
    service: Service, previous: PreviousRelease, timings: Timings
) -> None:
    machine = service.machine
    pid_before = machine.show("MainPID")["MainPID"]
    started = time.monotonic()
    output = _install(service, CHECKOUT)
    timings.record("rollback_roll_forward", started)
    assert f"restarted with release {VERSION}-" in output, output[-3000:]
    assert machine.show("MainPID")["MainPID"] != pid_before
    _serves_current(service)
    # The previous release stays on disk, to roll back to.
    kept = machine.out(f"ls {RELEASES}").split()
    assert [name.split("-")[0] for name in kept] == sorted([previous.version, VERSION]), kept


def test_rolling_back_serves_the_previous_prices_again(
    service: Service, previous: PreviousRelease, timings: Timings
) -> None:
    """The README's rollback: ``current`` back to the previous release, restart."""
    machine = service.machine
    (release,) = machine.out(f"cd {RELEASES} && ls -d {previous.version}-*").split()
    started = time.monotonic()
    machine.run(
        f"ln -sfn releases/{release} {CURRENT}.new && mv -T {CURRENT}.new {CURRENT} "
        f"&& systemctl restart {UNIT}"
    )
    _serves_previous(service, previous)
    timings.record("rollback_roll_back", started)


def test_install_sh_promotes_and_rolls_back_without_rebuilding(
    service: Service, previous: PreviousRelease
) -> None:
    """Check out a tag, run the script: each release is found built."""
    output = _install(service, CHECKOUT)
    assert re.search(rf"release {re.escape(VERSION)}-\S+ is already installed", output), output
    _serves_current(service)
    output = _install(service, PREVIOUS_CHECKOUT)
    assert re.search(rf"release {re.escape(previous.version)}-\S+ is already installed", output)
    _serves_previous(service, previous)


def test_the_log_across_the_versions(service: Service, previous: PreviousRelease) -> None:
    """One SQLite log across the releases. Rolled back across the log's
    migrations, the previous release cannot write it (its Alembic does not
    know the newer revision: the journal says so), and its records wait in
    the spool until a release that knows the log writes them: the first
    rollback's houses were written when this version came back, the second's
    are still in the spool (deploy/systemd/README.md, "Roll back")."""
    houses = len(_test_houses())
    count = (
        "import glob, json, sqlite3\n"
        f"db = sqlite3.connect('file:{STATE_DIR}/predictions.sqlite3?mode=ro', uri=True)\n"
        "logged = dict(db.execute('select model_version, count(*) from predictions '\n"
        "                         'group by model_version').fetchall())\n"
        f"spool = glob.glob('{STATE_DIR}/spool/*')\n"
        "spooled = sum(len(open(f).read().splitlines()) for f in spool)\n"
        "print(json.dumps([logged, spooled]))\n"
    )
    expected = [{previous.version: 2 * houses, VERSION: 2 * houses}, houses]
    deadline = time.monotonic() + 15
    while True:
        found = json.loads(service.machine.out(f"python3 -c {shlex.quote(count)}"))
        if found == expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert found == expected
    journal = "\n".join(service.machine.journal())
    assert "Can't locate revision identified by" in journal
