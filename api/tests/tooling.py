"""What the tests that drive outside tools share: skipping (or, in CI,
failing) when a tool is missing, running a command with its output in the
failure, and the container engine (docker where an engine answers, else
podman), and the base images a build needs (present, else pulled, else
skip or fail).

Used by the container test here and by the deployment tests
(``deploy/tests``). Each caller names the ``REQUIRE_*`` variable that turns
its skips into failures: CI (``.ci/run``) sets them all, so nothing it is
meant to test is skipped for lack of a tool.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest


def unavailable(reason: str, required_by: str) -> NoReturn:
    """Skip for ``reason``, or fail when the variable ``required_by`` is 1."""
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{required_by}=1 but {reason}")
    pytest.skip(reason)


def run(
    command: list[str], timeout: float = 120, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``command``; with ``check``, a non-zero exit fails with its output."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def works(command: list[str]) -> bool:
    """Whether ``command`` runs and exits 0 within a minute."""
    try:
        return subprocess.run(command, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


#: How long pulling a missing base image may take before the test gives up on it.
PULL_TIMEOUT = 300.0


def base_images(containerfile: Path) -> list[str]:
    """The images ``containerfile`` builds ``FROM``, in order, each once (not
    its own stages, nor ``scratch``)."""
    images: list[str] = []
    stages: set[str] = set()
    for line in containerfile.read_text().splitlines():
        words = line.split()
        if not words or words[0].upper() != "FROM":
            continue
        names = [word for word in words[1:] if not word.startswith("--")]  # --platform=...
        image = names[0]
        if len(names) >= 3 and names[1].upper() == "AS":
            stages.add(names[2].lower())
        if image.lower() not in stages and image != "scratch" and image not in images:
            images.append(image)
    return images


def pull_if_missing(engine: str, image: str, timeout: float = PULL_TIMEOUT) -> str | None:
    """Make ``image`` present for ``engine``: None when it is here (CI's local
    stand-in) or was just pulled; otherwise why it is not (no registry
    answered, or the pull took longer than ``timeout``)."""
    if works([engine, "image", "inspect", image]):
        return None
    try:
        pulled = subprocess.run(
            [engine, "pull", image], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"the base image {image} is not here and `{engine} pull` took over {timeout:g} s"
    except OSError as error:
        return f"the base image {image} is not here and `{engine} pull` did not run: {error}"
    if pulled.returncode == 0 and works([engine, "image", "inspect", image]):
        return None
    said = (pulled.stderr or pulled.stdout).strip().splitlines()
    return (
        f"the base image {image} is not here and `{engine} pull` failed "
        f"({said[-1][-300:] if said else f'exit {pulled.returncode}'}); in CI, "
        '`eval "$(../shared/ci/offline-container-base.sh)"` provides a local stand-in'
    )


@dataclass(frozen=True)
class Engine:
    """A container engine's command line: ``docker`` or ``podman``; a test
    that cannot get what it needs skips, or fails when ``required_by`` is 1."""

    name: str
    required_by: str

    def run(
        self, *args: str, timeout: float = 120, check: bool = True, cwd: Path | None = None
    ) -> str:
        return run([self.name, *args], timeout=timeout, check=check, cwd=cwd).stdout.strip()

    def ensure_image(self, image: str) -> None:
        """``image`` is here or is pulled now; else skip (or fail)."""
        reason = pull_if_missing(self.name, image)
        if reason is not None:
            unavailable(reason, self.required_by)

    def build(self, tag: str, context: Path, timeout: float = 1500) -> None:
        """Build ``context``'s Dockerfile as ``tag``. Its base images are made
        present first (pulled if missing, or the test skips); then podman never
        pulls (CI has a local stand-in for the base image and no registry: a
        pull would fail the build), and uses the docker format, which keeps the
        HEALTHCHECK that OCI images drop."""
        for base in base_images(context / "Dockerfile"):
            self.ensure_image(base)
        options = ["--pull=never", "--format", "docker"] if self.name == "podman" else []
        self.run(
            "build", *options, "-t", tag, "-f", str(context / "Dockerfile"), str(context),
            timeout=timeout,
        )  # fmt: skip


def numerics_environment() -> dict[str, str]:
    """This process's numpy SIMD level and OpenBLAS kernel settings
    (``NPY_DISABLE_CPU_FEATURES``, ``OPENBLAS_*``; ``.ci/run``'s second pass
    forces both). A server in a container or VM must get them too when its
    prices are compared exactly with this process's: numpy's AVX-512 and
    AVX2 logarithms differ in the last bit."""
    return {
        name: value
        for name, value in os.environ.items()
        if name == "NPY_DISABLE_CPU_FEATURES" or name.startswith("OPENBLAS_")
    }


def container_engine(required_by: str) -> Engine:
    """docker where an engine answers, else podman; else skip (or fail)."""
    for name in ("docker", "podman"):
        if shutil.which(name) and works([name, "info"]):
            return Engine(name, required_by)
    unavailable("neither `docker info` nor `podman info` works here", required_by)
