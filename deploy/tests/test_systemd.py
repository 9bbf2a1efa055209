"""The systemd unit, its environment file and install script, checked without
booting anything (``tox -e deploy``): the sandbox's exposure score, the script
under shellcheck, and the facts the three files must agree on.

Booting the unit for real (install from the private index, serve, SIGKILL,
stop, and ``systemd-analyze verify``, which needs the installed venv) is
``release/test_deploy_systemd.py``, in ``tox -e release``: it needs the
rehearsal's private index with the published wheel.

A missing tool (systemd-analyze, shellcheck) skips, or fails with
``REQUIRE_DEPLOY=1`` (``.ci/run``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from api.tests.tooling import unavailable

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = ROOT / "deploy" / "systemd"
UNIT = SYSTEMD_DIR / "house-prices-api.service"
ENV_EXAMPLE = SYSTEMD_DIR / "house-prices-api.env"
INSTALL = SYSTEMD_DIR / "install.sh"
#: systemd-analyze security's overall exposure (0 best, 10 worst) the unit must keep.
MAX_EXPOSURE = 2.0
#: Names the unit reads that are not API settings.
UNIT_ONLY_VARIABLES = {"HOST", "PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (Debian: .ci/run installs it)", "REQUIRE_DEPLOY")
    return path


def _unit() -> dict[str, list[str]]:
    """``Section.Key`` -> every value, in order (units repeat keys such as Environment=)."""
    entries: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, value = line.split("=", 1)
        entries.setdefault(f"{section}.{key}", []).append(value)
    return entries


def _unit_environment() -> dict[str, str]:
    variables: dict[str, str] = {}
    for value in _unit()["Service.Environment"]:
        for assignment in value.split():
            name, setting = assignment.split("=", 1)
            variables[name] = setting
    return variables


def _env_example() -> dict[str, str]:
    """Every variable the example sets or shows commented out."""
    variables = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"#?([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            variables[match[1]] = match[2]
    return variables


def _settings() -> dict[str, object]:
    """The API's settings and their defaults, from api/app/core/settings.py (``api`` is
    not a package on sys.path here: asked from the source tree)."""
    result = subprocess.run(
        [sys.executable, "-c",
         "import json; from api.app.core.settings import Settings; print(json.dumps({n.upper(): "
         "f.default for n, f in Settings.model_fields.items()}, default=str))"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    settings: dict[str, object] = json.loads(result.stdout)
    return settings


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, f"TimeoutStopSec={value}: write it in s or min"
    return int(match[1]) * (60 if match[2] == "min" else 1)


def test_the_sandbox_exposure_score() -> None:
    """``--offline``: the unit file alone, without installing or loading it."""
    analyze = _tool("systemd-analyze")
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match[1]) <= MAX_EXPOSURE, result.stdout
    # Nothing the parser did not understand.
    assert "Unknown" not in result.stderr and "ignoring" not in result.stderr, result.stderr


def test_the_install_script_passes_shellcheck() -> None:
    shellcheck = _tool("shellcheck")
    result = subprocess.run(
        [shellcheck, "--shell=sh", "--severity=style", str(INSTALL)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.access(INSTALL, os.X_OK), "install.sh must be executable"


def test_every_variable_is_a_setting_the_api_reads() -> None:
    """The API ignores unknown variables: a misspelt one would do nothing."""
    known = set(_settings()) | UNIT_ONLY_VARIABLES
    assert set(_unit_environment()) - known == set()
    assert set(_env_example()) - known == set()
    # The four are shown to the operator.
    assert {"PORT", "WEB_CONCURRENCY", "DATABASE_URL", "API_KEY"} <= set(_env_example())


def test_the_example_repeats_the_unit_defaults() -> None:
    unit, example = _unit_environment(), _env_example()
    for name in set(unit) & set(example):
        assert unit[name] == example[name], name


def test_stop_timeout_covers_the_graceful_shutdown() -> None:
    """TimeoutStopSec must leave the workers GRACEFUL_SHUTDOWN_SECONDS of
    draining plus the prediction log's last flush before SIGKILL."""
    settings = _settings()
    timeout = _seconds(_unit()["Service.TimeoutStopSec"][-1])
    flush = float(str(settings["PREDICTION_LOG_TIMEOUT_SECONDS"]))
    for graceful in (
        _unit_environment()["GRACEFUL_SHUTDOWN_SECONDS"],
        _env_example()["GRACEFUL_SHUTDOWN_SECONDS"],
        str(settings["GRACEFUL_SHUTDOWN_SECONDS"]),
    ):
        assert timeout >= float(graceful) + flush + 5, (timeout, graceful)
    service = _unit()
    assert service["Service.KillMode"] == ["mixed"], "SIGTERM to uvicorn's supervisor only"
    assert service["Service.KillSignal"] == ["SIGTERM"]
    assert service["Service.Restart"] == ["on-failure"]


def test_the_unit_and_the_script_agree_on_names_and_paths() -> None:
    script = INSTALL.read_text()

    def assigned(name: str) -> str:
        match = re.search(rf"^{name}=(\S+)$", script, flags=re.MULTILINE)
        assert match, name
        return match[1]

    name, user = assigned("NAME"), assigned("SERVICE_USER")
    assert UNIT.name == f"{name}.service" and ENV_EXAMPLE.name == f"{name}.env"
    unit = _unit()
    assert unit["Service.User"] == [user] and unit["Service.Group"] == [user]
    assert unit["Service.EnvironmentFile"] == [f"/etc/{name}/env"]
    assert unit["Service.StateDirectory"] == [name]
    assert unit["Service.ExecStart"][0].startswith(f"/opt/{name}/current/venv/bin/python -m api")
    assert _unit_environment()["PYTHONPATH"] == f"/opt/{name}/current/app"
    for variable in ("PREDICTION_LOG_PATH", "PREDICTION_LOG_SPOOL_DIR"):
        assert _unit_environment()[variable].startswith(f"/var/lib/{name}/")
