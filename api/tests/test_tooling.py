"""The container tests' base images, read from the Containerfiles they build
(``tooling.base_images``): what is made present (or pulled) before a
``--pull=never`` build."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.tests.helpers import API_PARENT
from api.tests.tooling import base_images


def test_the_base_images_of_the_dockerfile_and_the_systemd_machine() -> None:
    if not (API_PARENT / "Dockerfile").is_file():  # the release rehearsal's copy of api/
        pytest.skip(f"no source tree beside api/ ({API_PARENT}): no Containerfiles")
    assert base_images(API_PARENT / "Dockerfile") == ["python:3.11-slim"]
    machine = API_PARENT / "deploy" / "tests" / "systemd-vm.Containerfile"
    assert base_images(machine) == ["python:3.11-slim"]


def test_stages_scratch_and_flags_are_not_base_images(tmp_path: Path) -> None:
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text(
        "# FROM comment:1\n"
        "FROM --platform=linux/amd64 golang:1.23 AS build\n"
        "FROM build AS test\n"
        "from scratch\n"
        "FROM debian:13-slim\n"
        "FROM golang:1.23\n"
    )
    assert base_images(containerfile) == ["golang:1.23", "debian:13-slim"]
