"""The release rehearsal's private package index, shared by every test that
installs from it (``tox -e release``): the rehearsal itself
(``test_e2e_release.py``) and the systemd deployment (``test_deploy_systemd.py``).

Session-scoped fixtures, so one run starts one index, publishes once and
mirrors once, whichever tests use them (``conftest.py`` brings them in):

- ``private_index``: ``pypiserver`` on 127.0.0.1 with an htpasswd file
  (uploads, downloads and listings all need the password), an empty package
  directory and no fallback to PyPI;
- ``published``: ``tox -e publish_model`` against it (build once, check, test
  the wheel, upload that file); returns ``dist/release.json``;
- ``mirrored_dependencies``: the wheel's and the API's dependencies copied into
  the index's directory, as a private index proxying PyPI would hold them;
- ``timings``: phase durations, written to ``dist/release-e2e.json``.

A test that cannot run here (pypiserver not installed) skips, or fails when
``REQUIRE_RELEASE=1`` (set by ``.ci/run``).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from testkit import free_port

ROOT = Path(__file__).resolve().parents[1]
RELEASE_DIR = Path(__file__).resolve().parent
VERSION = (ROOT / "regression_model" / "VERSION").read_text().strip()
CONSTRAINTS = ROOT / "constraints.txt"
DIST = ROOT / "dist"
API_DIR = ROOT / "api"
API_REQUIREMENTS = API_DIR / "requirements.txt"
#: Extra requirements the API test suite needs, the first that exists.
API_TEST_REQUIREMENTS = (
    API_DIR / "requirements-test.txt",
    API_DIR / "test-requirements.txt",
    API_DIR / "requirements-dev.txt",
)
USER = "release-bot"
STARTUP_SECONDS = 30
COMMAND_TIMEOUT = 1200


def _project_name() -> str:
    match = re.search(
        r'^name\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), flags=re.MULTILINE
    )
    assert match, "pyproject.toml has no [project] name"
    return match.group(1)


PROJECT = _project_name()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def cannot_run(reason: str) -> None:
    if os.environ.get("REQUIRE_RELEASE") == "1":
        pytest.fail(f"{reason} (REQUIRE_RELEASE=1: the release test must run)")
    pytest.skip(reason)


@dataclass
class Timings:
    started: float = field(default_factory=time.monotonic)
    phases: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def record(self, phase: str, since: float) -> None:
        self.phases[phase] = round(time.monotonic() - since, 1)


@dataclass(frozen=True)
class PrivateIndex:
    host: str
    port: int
    packages: Path
    password: str
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def simple_url_with_credentials(self) -> str:
        return f"http://{USER}:{self.password}@{self.host}:{self.port}/simple/"

    def get(self, path: str, authenticated: bool = True) -> int:
        request = urllib.request.Request(self.url + path)
        if authenticated:
            token = base64.b64encode(f"{USER}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except urllib.error.URLError:
            return 0  # not listening (yet)


def _run(
    command: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT, log: Path
) -> subprocess.CompletedProcess[str]:
    """Run a command, keep its output in ``log``, fail the test with its tail."""
    result = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT, check=False,
    )  # fmt: skip
    log.write_text(f"$ {' '.join(command)}\n{result.stdout}\n{result.stderr}")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + "\n" + result.stderr).splitlines()[-60:])
        pytest.fail(f"`{' '.join(command)}` failed ({result.returncode}):\n{tail}\n(log: {log})")
    return result


def _isolated_env(venv: Path | None = None) -> dict[str, str]:
    """No pip configuration at all (files, environment), nothing on PYTHONPATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "TOX_", "REGRESSION_MODEL_", "PYTHON"))
        and k not in {"VIRTUAL_ENV", "CONDA_PREFIX"}
    }
    env["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no configuration file
    env["PYTHONSAFEPATH"] = "1"  # no cwd or script directory on sys.path
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    return env


def _private_install(
    venv: Path, index: PrivateIndex, args: list[str], log: Path
) -> subprocess.CompletedProcess[str]:
    result = _run(
        [str(venv / "bin" / "python"), "-m", "pip", "--isolated", "install", "--no-cache-dir",
         "--disable-pip-version-check", "--index-url", index.simple_url_with_credentials,
         "-v", *args],
        env=_isolated_env(venv), cwd=venv, log=log,
    )  # fmt: skip
    looked_in = [line for line in result.stdout.splitlines() if "Looking in" in line]
    assert looked_in, "pip did not say where it looked"
    for line in looked_in:
        assert line.startswith("Looking in indexes: ") and f"@{index.host}:{index.port}" in line
        assert "," not in line, f"pip looked at more than the private index: {line}"
    return result


def _requirement_names(path: Path) -> list[str]:
    """Requirement lines of a requirements file (no options, no comments)."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            lines.append(line)
    return lines


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def timings(request: pytest.FixtureRequest) -> Iterator[Timings]:
    timings = Timings()
    yield timings
    timings.facts["total_seconds"] = round(time.monotonic() - timings.started, 1)
    summary = {"phases_seconds": timings.phases, **timings.facts}
    DIST.mkdir(exist_ok=True)
    (DIST / "release-e2e.json").write_text(json.dumps(summary, indent=2) + "\n")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\nrelease rehearsal: {json.dumps(summary)}")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("release")


@pytest.fixture(scope="session")
def private_index(workdir: Path, timings: Timings) -> Iterator[PrivateIndex]:
    for module in ("pypiserver", "passlib"):
        if importlib.util.find_spec(module) is None:
            cannot_run(f"{module} is not installed (run this with `tox -e release`)")
    with warnings.catch_warnings():
        # passlib 1.7.4 imports the stdlib `crypt` module, deprecated in 3.11.
        warnings.filterwarnings("ignore", "'crypt' is deprecated", DeprecationWarning)
        HtpasswdFile = importlib.import_module("passlib.apache").HtpasswdFile

    started = time.monotonic()
    packages = workdir / "packages"
    packages.mkdir()
    password = base64.urlsafe_b64encode(os.urandom(18)).decode()
    htpasswd = HtpasswdFile(str(workdir / "htpasswd"), new=True, default_scheme="bcrypt")
    htpasswd.set_password(USER, password)
    htpasswd.save()
    index = PrivateIndex("127.0.0.1", free_port(), packages, password, workdir / "pypiserver.log")
    with index.log.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "pypiserver", "run", "--host", index.host,
             "--port", str(index.port), "--passwords", str(workdir / "htpasswd"),
             "--authenticate", "update,download,list", "--disable-fallback",
             "--backend", "simple-dir", "--server", "wsgiref", str(packages)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while index.get("/health", authenticated=False) != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"pypiserver did not start:\n{index.log.read_text()[-3000:]}")
            time.sleep(0.2)
        timings.record("start_index", started)
        yield index
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="session")
def published(private_index: PrivateIndex, workdir: Path, timings: Timings) -> dict[str, Any]:
    """``tox -e publish_model`` against the private index; returns dist/release.json."""
    started = time.monotonic()
    env = {
        k: v
        for k, v in os.environ.items()
        # Drop what the outer tox run set for its own environment.
        if not k.startswith(("TOX_ENV_", "TOX_WORK_DIR", "TOX_PACKAGE", "TWINE_"))
        and k not in {"VIRTUAL_ENV", "PYTHONPATH"}
    }
    env.update(
        TWINE_REPOSITORY_URL=private_index.url + "/",
        TWINE_USERNAME=USER,
        TWINE_PASSWORD=private_index.password,
    )
    _run(
        [sys.executable, "-m", "tox", "-c", str(ROOT / "tox.ini"), "-e", "publish_model"],
        env=env, log=workdir / "publish_model.log",
    )  # fmt: skip
    timings.record("publish_model", started)
    record: dict[str, Any] = json.loads((DIST / "release.json").read_text())
    # What the upload put in the index, before any test mirrors dependencies into it.
    record["index_files_after_upload"] = sorted(p.name for p in private_index.packages.iterdir())
    timings.facts.update(
        wheel=record["wheel"],
        wheel_bytes=record["wheel_bytes"],
        wheel_tests=record["tests"],
    )
    return record


@pytest.fixture(scope="session")
def mirrored_dependencies(
    private_index: PrivateIndex, published: dict[str, Any], workdir: Path, timings: Timings
) -> list[str]:
    """Put the wheel's and the API's dependencies in the index's directory.

    Downloaded with the machine's ordinary pip configuration, as the mirror
    behind a private index would; our own package is never taken from there.
    """
    started = time.monotonic()
    seed = workdir / "seed"
    wheel = str(DIST / published["wheel"])
    # + pyarrow (the [arrow] extra): `regression-model predict` reads and writes files with it
    requirements = [wheel, "pyarrow"]
    for path in (API_REQUIREMENTS, *API_TEST_REQUIREMENTS):
        if path.is_file():
            for requirement in _requirement_names(path):
                if not _normalise(requirement).startswith(PROJECT):
                    requirements.append(requirement)
                elif "[" in requirement:  # the extras the API asks of our package
                    extras = requirement.split("[", 1)[1].split("]", 1)[0]
                    requirements.append(f"{wheel}[{extras}]")
    _run(
        [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
         "--only-binary=:all:", "-c", str(CONSTRAINTS), "-d", str(seed), *requirements],
        log=workdir / "mirror.log",
    )  # fmt: skip
    own_prefix = published["wheel"].split("-")[0] + "-"
    mirrored = []
    for file in sorted(seed.iterdir()):
        if not file.name.startswith(own_prefix):
            shutil.copy2(file, private_index.packages / file.name)
            mirrored.append(file.name)
    timings.record("mirror_dependencies", started)
    timings.facts["mirrored_files"] = len(mirrored)
    return mirrored
