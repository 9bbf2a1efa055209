"""pytest plugin: the tests must exercise the installed wheel, not the source tree.

Loaded with ``-p installed_package_guard`` by ``publish_model.py`` and the
end-to-end release test. It imports ``regression_model`` before any test
module is collected, so that the package is bound to the copy installed in
``$RELEASE_EXPECTED_SITE`` (a virtual environment) and a later ``sys.path``
insertion cannot swap in the source tree; it fails the session if the package
comes from anywhere else, at the start and again at the end.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

PACKAGE = "regression_model"
_location = pytest.StashKey[Path]()


def _misplaced() -> tuple[Path, str | None]:
    """Where the package was imported from, and what is wrong with that."""
    expected = Path(os.environ["RELEASE_EXPECTED_SITE"]).resolve()
    module = sys.modules.get(PACKAGE) or importlib.import_module(PACKAGE)
    location = Path(module.__file__ or "").resolve().parent
    if expected in location.parents and "site-packages" in location.parts:
        return location, None
    return location, (
        f"{PACKAGE} was imported from {location}, not from the installed wheel in "
        f"{expected}: the source tree is on sys.path"
    )


def pytest_configure(config: pytest.Config) -> None:
    location, problem = _misplaced()
    if problem:
        raise pytest.UsageError(problem)
    config.stash[_location] = location


def pytest_report_header(config: pytest.Config) -> str:
    return f"{PACKAGE} under test: {config.stash[_location]} (installed wheel)"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _, problem = _misplaced()
    if problem:
        print(f"\nERROR: {problem}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
