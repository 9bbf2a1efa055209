"""Publish the exact tested wheel: build it once, check it, test it installed, upload it.

``tox -e publish_model`` runs this. Each step refuses to go on when its check
fails, and nothing is ever retrained:

1. a version tag at HEAD (and ``$CIRCLE_TAG``), if any, must name VERSION
   (``v0.1.0`` or ``0.1.0``), and a tagged release must not carry uncommitted
   package sources;
2. the trained artifact and manifest of VERSION must already be in the source
   tree (``tox -e train`` makes them);
3. ``python -m build``: the sdist, then the wheel built from that sdist;
4. ``twine check --strict`` on both;
5. the wheel must carry the model tables, the pickle and their manifest; the
   manifest's sha256 of each must match the file, its version and config hash
   must match the wheel's, and its metrics must pass the config's quality gate;
6. the wheel is installed in a fresh virtual environment and the package
   tests run against it (never against the source tree: a pytest plugin
   fails the run if ``regression_model`` is imported from anywhere else);
7. the wheel's sha256 is checked again and recorded in ``dist/release.json``;
8. ``twine upload`` of that one file to ``$TWINE_REPOSITORY_URL`` with
   ``$TWINE_USERNAME`` / ``$TWINE_PASSWORD``.

``$WHEEL_TESTS_MARKER``, when set, narrows step 6 to the tests with that pytest
marker expression (.ci/run's second pass: only what depends on training). Such
a build is recorded as partly tested and ``--upload-only`` refuses it, as does
a tagged release.

CI splits this in two: ``--skip-upload`` (build and test, keep ``dist/``) in
the test job, ``--upload-only`` (re-verify the recorded wheel, upload it) in
the publish job, which neither trains nor builds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

from strictyaml import load as load_yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "regression_model"
VERSION_FILE = ROOT / PACKAGE / "VERSION"
CONFIG_FILE = ROOT / PACKAGE / "config.yml"
CONSTRAINTS = ROOT / "constraints.txt"
DEFAULT_DIST = ROOT / "dist"
RECORD_NAME = "release.json"
#: The pytest plugin (in this folder) that pins ``regression_model`` to the wheel.
GUARD_PLUGIN = "installed_package_guard"
SELECTED_TESTS_ENV_VAR = "WHEEL_TESTS_MARKER"
#: Tests that only make sense in a source checkout: test_wheel.py builds its own
#: wheel from the source tree, which this script replaces with the real one
#: (built once, inspected, installed in a fresh venv and tested here).
SOURCE_TREE_ONLY_TESTS = ("tests/test_wheel.py",)
#: Tests needing what the wheel's [test] extra leaves out: the exported SQL run
#: by Spark (pyspark and a Java runtime; tox's test_package runs it on the
#: source tree, and the query is written from the same tables).
NOT_IN_TEST_EXTRA = ("tests/test_sql_export.py::test_spark_prices_as_the_package",)
PUBLIC_INDEX_HOSTS = ("pypi.org", "upload.pypi.org", "test.pypi.org", "pypi.python.org")


class ReleaseError(RuntimeError):
    """A release check failed; the message says what to fix."""


@dataclass(frozen=True)
class WheelFacts:
    version: str
    artifact_sha256: str
    cv_rmsle: float
    max_cv_rmsle: float


def step(message: str) -> None:
    print(f"== {message}", flush=True)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_version() -> str:
    return VERSION_FILE.read_text().strip()


def distribution_stem() -> str:
    """``ames_regression_model``: the wheel file prefix (normalised project name)."""
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'^name\s*=\s*"([^"]+)"', text, flags=re.MULTILINE)
    if not match:
        raise ReleaseError("pyproject.toml has no [project] name")
    return re.sub(r"[-_.]+", "_", match.group(1)).lower()


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def check_tag(version: str) -> str | None:
    """The version tag being released, if any; refuses one that is not VERSION."""
    accepted = {version, f"v{version}"}
    tags: list[str] = []
    if shutil.which("git") and _git("rev-parse", "--git-dir").returncode == 0:
        tags = _git("tag", "--points-at", "HEAD").stdout.split()
    if circle_tag := os.environ.get("CIRCLE_TAG"):
        tags.append(circle_tag)
    version_tags = sorted({t for t in tags if re.match(r"v?\d", t)})
    wrong = [t for t in version_tags if t not in accepted]
    if wrong:
        raise ReleaseError(
            f"tag {', '.join(wrong)} does not match VERSION {version} "
            f"({VERSION_FILE.relative_to(ROOT)}): tag v{version}, or bump VERSION, "
            "retrain and tag again"
        )
    if version_tags and selected_tests():
        raise ReleaseError(
            f"tagged release {version_tags[0]} with ${SELECTED_TESTS_ENV_VAR} set: a release "
            "runs all the package tests against its wheel"
        )
    if version_tags:
        dirty = _git("status", "--porcelain", "--", PACKAGE, "pyproject.toml").stdout
        if dirty.strip():
            raise ReleaseError(
                f"tagged release {version_tags[0]} but the package sources have "
                f"uncommitted changes:\n{dirty}commit or discard them first"
            )
        return version_tags[0]
    return None


def read_config(text: str) -> dict[str, Any]:
    data = load_yaml(text).data
    if not isinstance(data, dict):
        raise ReleaseError("config.yml is not a mapping")
    return data


def artifact_names(version: str, config: dict[str, Any]) -> tuple[str, str, str]:
    """(pickle, tables, manifest) file names, as regression_model.scoring.artifact names them."""
    stem = f"{config['pipeline_name']}_v{version}"
    return f"{stem}.pkl", f"{stem}.tables.json", f"{stem}.json"


def check_trained_artifact(version: str) -> None:
    names = artifact_names(version, read_config(CONFIG_FILE.read_text()))
    pickle_name, tables_name, manifest_name = names
    folder = ROOT / PACKAGE / "trained_models"
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise ReleaseError(
            f"no trained model to publish: {', '.join(missing)} missing in {folder}. "
            "Train it first with `tox -e train` (publishing never trains)."
        )
    manifest = json.loads((folder / manifest_name).read_text())
    for name, key in ((pickle_name, "artifact"), (tables_name, "tables")):
        if manifest.get(key, {}).get("sha256") != sha256_of(folder / name):
            raise ReleaseError(
                f"{folder / name} does not match its manifest: retrain with `tox -e train`"
            )


def build(dist: Path) -> tuple[Path, Path]:
    stem = distribution_stem()
    dist.mkdir(parents=True, exist_ok=True)
    for old in [*dist.glob(f"{stem}-*"), dist / RECORD_NAME]:
        old.unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)],
        check=True,
    )
    wheels, sdists = sorted(dist.glob(f"{stem}-*.whl")), sorted(dist.glob(f"{stem}-*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        raise ReleaseError(f"expected one wheel and one sdist in {dist}, got {wheels + sdists}")
    return wheels[0], sdists[0]


def twine_check(*files: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, files)], check=True
    )


def inspect_wheel(wheel: Path, version: str) -> WheelFacts:
    """Read the artifact, manifest and config inside the wheel and check them."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())

        def read(name: str) -> bytes:
            if name not in names:
                raise ReleaseError(f"{wheel.name} lacks {name}")
            return archive.read(name)

        wheel_version = read(f"{PACKAGE}/VERSION").decode().strip()
        config_bytes = read(f"{PACKAGE}/config.yml")
        config = read_config(config_bytes.decode())
        pickle_name, tables_name, manifest_name = artifact_names(version, config)
        pickle_bytes = read(f"{PACKAGE}/trained_models/{pickle_name}")
        tables_bytes = read(f"{PACKAGE}/trained_models/{tables_name}")
        manifest = json.loads(read(f"{PACKAGE}/trained_models/{manifest_name}"))
        metadata = next(
            (archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA")), ""
        )
    problems: list[str] = []
    if wheel_version != version:
        problems.append(f"its VERSION is {wheel_version}, the source tree's is {version}")
    if f"\nVersion: {version}\n" not in metadata:
        problems.append(f"its METADATA does not declare Version: {version}")
    pickle_sha = hashlib.sha256(pickle_bytes).hexdigest()
    if manifest.get("artifact", {}).get("sha256") != pickle_sha:
        problems.append(f"the manifest's sha256 is not the sha256 of {pickle_name} ({pickle_sha})")
    tables_sha = hashlib.sha256(tables_bytes).hexdigest()
    if manifest.get("tables", {}).get("sha256") != tables_sha:
        problems.append(f"the manifest's sha256 is not the sha256 of {tables_name} ({tables_sha})")
    if manifest.get("version") != version:
        problems.append(f"the manifest says version {manifest.get('version')}, not {version}")
    if manifest.get("config", {}).get("sha256") != hashlib.sha256(config_bytes).hexdigest():
        problems.append("the manifest was trained with another config.yml than the wheel's")
    max_cv_rmsle = float(config["max_cv_rmsle"])
    try:
        cv_rmsle = float(manifest["metrics"]["cross_validation"]["rmsle_mean"])
    except (KeyError, TypeError, ValueError):
        cv_rmsle = float("inf")
        problems.append("the manifest has no metrics.cross_validation.rmsle_mean")
    if manifest.get("quality_gate", {}).get("passed") is not True:
        problems.append("the manifest's quality_gate did not pass")
    if not cv_rmsle <= max_cv_rmsle:
        problems.append(
            f"cross-validated RMSLE {cv_rmsle:.4f} is above the quality gate "
            f"max_cv_rmsle={max_cv_rmsle}"
        )
    if problems:
        raise ReleaseError(f"refusing to publish {wheel.name}: " + "; ".join(problems))
    return WheelFacts(version, pickle_sha, cv_rmsle, max_cv_rmsle)


def _clean_env(venv: Path) -> dict[str, str]:
    """The environment for the fresh venv: its bin first, no source tree on sys.path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
        and not k.startswith("REGRESSION_MODEL_")
    }
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    # Python 3.11+: no script directory or cwd on sys.path, in this process and
    # every subprocess the tests start, so the source tree cannot shadow the wheel.
    env["PYTHONSAFEPATH"] = "1"
    return env


def selected_tests() -> str:
    """The pytest marker expression narrowing the wheel's tests ("" for all)."""
    return os.environ.get(SELECTED_TESTS_ENV_VAR, "").strip()


def run_tests_against_wheel(wheel: Path, facts: WheelFacts, workdir: Path) -> dict[str, int]:
    """Install the wheel in a fresh venv and run the package tests against it."""
    venv = workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = _clean_env(venv)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-c", str(CONSTRAINTS), f"{wheel}[test]"],
        check=True, env=env, cwd=workdir,
    )  # fmt: skip
    info = subprocess.run(
        [str(venv / "bin" / "regression-model"), "info"],
        check=False, env=env, cwd=workdir, capture_output=True, text=True,
    )  # fmt: skip
    if info.returncode != 0:
        raise ReleaseError(
            f"the installed wheel cannot load its model:\n{info.stdout}{info.stderr}"
        )
    details = json.loads(info.stdout)
    where = Path(details["artifact"]["path"]).resolve()
    if venv.resolve() not in where.parents:
        raise ReleaseError(f"`regression-model info` used {where}, not the fresh venv's copy")
    if details["artifact"]["sha256"] != facts.artifact_sha256:
        raise ReleaseError("the installed artifact is not the one inside the wheel")
    print(f"installed {wheel.name} in {venv}; model loads from {where}")
    junit = workdir / "junit.xml"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent)  # the guard plugin only
    env["RELEASE_EXPECTED_SITE"] = str(venv)
    ignored = [f"--ignore={ROOT / t}" for t in SOURCE_TREE_ONLY_TESTS]
    ignored += [f"--deselect={t}" for t in NOT_IN_TEST_EXTRA]  # node ids: relative to ROOT
    if marker := selected_tests():
        print(f"only the wheel's tests marked {marker!r} (${SELECTED_TESTS_ENV_VAR})")
        ignored += ["-m", marker]
    result = subprocess.run(
        [str(python), "-m", "pytest", "-p", GUARD_PLUGIN, "-p", "no:cacheprovider",
         f"--junitxml={junit}", "--rootdir", str(ROOT), *ignored, str(ROOT / "tests")],
        check=False, env=env, cwd=ROOT,
    )  # fmt: skip
    if result.returncode != 0:
        raise ReleaseError(f"the package tests failed against {wheel.name}: not publishing it")
    suite = ElementTree.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    counts = {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}
    return counts


def check_index_url() -> str:
    url = os.environ.get("TWINE_REPOSITORY_URL", "")
    missing = [
        name
        for name in ("TWINE_REPOSITORY_URL", "TWINE_USERNAME", "TWINE_PASSWORD")
        if not os.environ.get(name)
    ]
    if missing:
        raise ReleaseError(
            f"set {', '.join(missing)} to the private index to publish to "
            "(or pass --skip-upload to build and test only)"
        )
    host = (urlsplit(url).hostname or "").lower()
    if any(host == h or host.endswith("." + h) for h in PUBLIC_INDEX_HOSTS):
        raise ReleaseError(f"refusing to publish the model to the public index {url}")
    return url


def upload(wheel: Path, url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "twine", "upload", "--non-interactive",
         "--disable-progress-bar", "--repository-url", url, str(wheel)],
        check=True,
    )  # fmt: skip


def write_record(dist: Path, record: dict[str, Any]) -> None:
    (dist / RECORD_NAME).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_record(dist: Path) -> dict[str, Any]:
    path = dist / RECORD_NAME
    if not path.is_file():
        raise ReleaseError(f"no {path}: run `tox -e publish_model -- --skip-upload` first")
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--skip-upload", action="store_true", help="build and test only")
    mode.add_argument(
        "--upload-only", action="store_true", help="upload the wheel recorded in dist/ as tested"
    )
    parser.add_argument("--dist", type=Path, default=DEFAULT_DIST, help="output folder")
    args = parser.parse_args(argv)
    dist: Path = args.dist.resolve()
    started = time.monotonic()
    try:
        version = read_version()
        step(f"release checks for version {version}")
        tag = check_tag(version)
        print(f"tag at HEAD: {tag or 'none'}")
        url = None if args.skip_upload else check_index_url()
        if args.upload_only:
            record = read_record(dist)
            wheel = dist / record["wheel"]
            if record.get("version") != version or not record.get("tested"):
                raise ReleaseError(f"{dist / RECORD_NAME} is not a tested build of {version}")
            if record.get("tests_selected"):
                raise ReleaseError(
                    f"{dist / RECORD_NAME} ran only the tests marked "
                    f"{record['tests_selected']!r}: build and test it again with all of them"
                )
            if not wheel.is_file() or sha256_of(wheel) != record["wheel_sha256"]:
                raise ReleaseError(f"{wheel} is missing or is not the file that was tested")
            inspect_wheel(wheel, version)
        else:
            check_trained_artifact(version)
            step("build the sdist, then the wheel from it (once)")
            wheel, sdist = build(dist)
            built_sha = sha256_of(wheel)
            step("twine check")
            twine_check(wheel, sdist)
            step("inspect the wheel: artifact, manifest, quality gate")
            facts = inspect_wheel(wheel, version)
            print(
                f"{wheel.name}: {wheel.stat().st_size:,} bytes, artifact sha256 "
                f"{facts.artifact_sha256[:12]}, CV RMSLE {facts.cv_rmsle:.4f} "
                f"<= {facts.max_cv_rmsle}"
            )
            step("install the wheel in a fresh venv and run the package tests against it")
            with tempfile.TemporaryDirectory(prefix="publish-model-") as workdir:
                counts = run_tests_against_wheel(wheel, facts, Path(workdir))
            if sha256_of(wheel) != built_sha:
                raise ReleaseError(f"{wheel} changed while it was being tested")
            record = {
                "version": version,
                "tag": tag,
                "git_commit": _git("rev-parse", "HEAD").stdout.strip() or None,
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "wheel": wheel.name,
                "wheel_sha256": built_sha,
                "wheel_bytes": wheel.stat().st_size,
                "sdist": sdist.name,
                "sdist_sha256": sha256_of(sdist),
                "artifact_sha256": facts.artifact_sha256,
                "cv_rmsle": facts.cv_rmsle,
                "tested": True,
                "tests": counts,
                "tests_selected": selected_tests() or None,
            }
            write_record(dist, record)
            print(f"tested: {counts}; recorded in {dist / RECORD_NAME}")
        if url is not None:
            step(f"upload {wheel.name} to {url}")
            upload(wheel, url)
            parts = urlsplit(url)
            netloc = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or ""
            record["uploaded_to"] = parts._replace(netloc=netloc).geturl()  # no credentials
            record["uploaded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            write_record(dist, record)
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"error: `{' '.join(map(str, exc.cmd))}` failed ({exc.returncode})", file=sys.stderr)
        return 1
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
