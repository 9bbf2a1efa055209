"""The API's requirements pin the model package it serves, by exact version."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

from regression_model import __version__ as model_version

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"
DISTRIBUTION = "ames-regression-model"


def _requirements() -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def test_the_model_package_is_pinned_to_its_version() -> None:
    pins = [r for r in _requirements() if r.lower().startswith(DISTRIBUTION)]
    # With the [log] extra: the API writes the prediction log.
    assert pins == [f"{DISTRIBUTION}[log]=={model_version}"]


def test_the_installed_package_is_the_pinned_one() -> None:
    assert version(DISTRIBUTION) == model_version


def test_every_other_requirement_has_a_lower_and_an_upper_bound() -> None:
    for requirement in _requirements():
        if requirement.lower().startswith(DISTRIBUTION):
            continue
        assert re.search(r">=[\d.]+", requirement) and re.search(r"<[\d.]+", requirement), (
            requirement
        )
