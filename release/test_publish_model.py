"""publish_model.py refuses what must not be published (fast, no build).

Wheels here are small zip files laid out like the real one, so each refusal
is shown on its own: a tag that is not VERSION, a missing artifact or
manifest, a manifest that does not match its pickle, another version or
config, a failed quality gate, and a public index as the upload target.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import publish_model
import pytest
from publish_model import ReleaseError, check_index_url, check_tag, inspect_wheel

VERSION = "1.2.3"
CONFIG = b"pipeline_name: regression_model\nalpha: 0.001\nmax_cv_rmsle: 0.125\n"
PICKLE = b"not really a pickle"
TABLES = b'{"not really": "tables"}'
PREFIX = "regression_model"


def _manifest(**changes: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "version": VERSION,
        "artifact": {"file": f"regression_model_v{VERSION}.pkl", "sha256": _sha(PICKLE)},
        "tables": {"file": f"regression_model_v{VERSION}.tables.json", "sha256": _sha(TABLES)},
        "config": {"file": "config.yml", "sha256": _sha(CONFIG)},
        "metrics": {"cross_validation": {"rmsle_mean": 0.112}},
        "quality_gate": {"max_cv_rmsle": 0.125, "passed": True},
    }
    manifest.update(changes)
    return manifest


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel(
    folder: Path,
    manifest: dict[str, Any] | None = None,
    *,
    omit: str = "",
    version: str = VERSION,
) -> Path:
    files = {
        f"{PREFIX}/VERSION": version.encode(),
        f"{PREFIX}/config.yml": CONFIG,
        f"{PREFIX}/trained_models/regression_model_v{VERSION}.pkl": PICKLE,
        f"{PREFIX}/trained_models/regression_model_v{VERSION}.tables.json": TABLES,
        f"{PREFIX}/trained_models/regression_model_v{VERSION}.json": json.dumps(
            manifest or _manifest()
        ).encode(),
        f"ames_regression_model-{VERSION}.dist-info/METADATA": (
            f"Metadata-Version: 2.4\nName: ames-regression-model\nVersion: {version}\n\n"
        ).encode(),
    }
    path = folder / f"ames_regression_model-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            if not (omit and name.endswith(omit)):
                archive.writestr(name, data)
    return path


def test_a_complete_wheel_passes(tmp_path: Path) -> None:
    facts = inspect_wheel(_wheel(tmp_path), VERSION)
    assert facts.artifact_sha256 == _sha(PICKLE)
    assert facts.cv_rmsle == 0.112 and facts.max_cv_rmsle == 0.125


@pytest.mark.parametrize("missing", [".pkl", ".tables.json", f"_v{VERSION}.json"])
def test_a_wheel_without_the_artifact_or_manifest_is_refused(tmp_path: Path, missing: str) -> None:
    with pytest.raises(ReleaseError, match=rf"lacks .*{missing}"):
        inspect_wheel(_wheel(tmp_path, omit=missing), VERSION)


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (_manifest(artifact={"sha256": "0" * 64}), "not the sha256 of .*pkl"),
        (_manifest(tables={"sha256": "0" * 64}), "not the sha256 of .*tables.json"),
        (_manifest(version="1.2.2"), "says version 1.2.2"),
        (_manifest(config={"sha256": "0" * 64}), "another config.yml"),
        (_manifest(quality_gate={"passed": False}), "quality_gate did not pass"),
        (_manifest(metrics={"cross_validation": {"rmsle_mean": 0.2}}), "above the quality gate"),
        (_manifest(metrics={}), "no metrics"),
    ],
)
def test_a_manifest_that_does_not_vouch_for_the_model_is_refused(
    tmp_path: Path, manifest: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ReleaseError, match=reason):
        inspect_wheel(_wheel(tmp_path, manifest), VERSION)


def test_a_wheel_of_another_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match=re.escape("VERSION is 9.9.9")):
        inspect_wheel(_wheel(tmp_path, version="9.9.9"), VERSION)


@pytest.mark.parametrize("tag", ["v1.2.4", "1.2.2", "v1.2.3rc1"])
def test_a_tag_that_is_not_version_is_refused(tag: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRCLE_TAG", tag)
    with pytest.raises(
        ReleaseError, match=re.escape(f"tag {tag} does not match VERSION {VERSION}")
    ):
        check_tag(VERSION)


@pytest.mark.parametrize("tag", ["v1.2.3", "1.2.3"])
def test_the_version_tag_is_accepted(
    tag: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CIRCLE_TAG", tag)
    monkeypatch.setattr(publish_model, "ROOT", tmp_path)  # not a git checkout: no dirty check
    assert check_tag(VERSION) == tag


def test_no_trained_artifact_means_no_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / PREFIX / "trained_models").mkdir(parents=True)
    (tmp_path / PREFIX / "config.yml").write_bytes(CONFIG)
    monkeypatch.setattr(publish_model, "ROOT", tmp_path)
    monkeypatch.setattr(publish_model, "CONFIG_FILE", tmp_path / PREFIX / "config.yml")
    with pytest.raises(ReleaseError, match=r"no trained model to publish.*tox -e train"):
        publish_model.check_trained_artifact(VERSION)


@pytest.mark.parametrize(
    "url", ["https://upload.pypi.org/legacy/", "https://test.pypi.org/legacy/"]
)
def test_the_model_is_never_uploaded_to_a_public_index(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWINE_REPOSITORY_URL", url)
    monkeypatch.setenv("TWINE_USERNAME", "u")
    monkeypatch.setenv("TWINE_PASSWORD", "p")
    with pytest.raises(ReleaseError, match="public index"):
        check_index_url()


def test_publishing_needs_the_private_index_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TWINE_REPOSITORY_URL", "TWINE_USERNAME", "TWINE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ReleaseError, match="set TWINE_REPOSITORY_URL, TWINE_USERNAME"):
        check_index_url()


def test_a_tagged_release_runs_all_the_wheel_tests(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CIRCLE_TAG", f"v{VERSION}")
    monkeypatch.setenv("WHEEL_TESTS_MARKER", "training")
    monkeypatch.setattr(publish_model, "ROOT", tmp_path)
    with pytest.raises(ReleaseError, match="runs all the package tests"):
        check_tag(VERSION)


def test_a_partly_tested_build_is_never_uploaded_later(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--upload-only`` trusts dist/release.json: one that ran a subset of the
    wheel's tests ($WHEEL_TESTS_MARKER, CI's second pass) does not vouch for it."""
    wheel = _wheel(tmp_path)
    record = {
        "version": VERSION,
        "wheel": wheel.name,
        "wheel_sha256": _sha(wheel.read_bytes()),
        "tested": True,
        "tests_selected": "training",
    }
    publish_model.write_record(tmp_path, record)
    monkeypatch.setattr(publish_model, "read_version", lambda: VERSION)
    monkeypatch.setattr(publish_model, "ROOT", tmp_path)  # not a git checkout: no tag
    monkeypatch.delenv("CIRCLE_TAG", raising=False)
    monkeypatch.setenv("TWINE_REPOSITORY_URL", "http://127.0.0.1:1/")
    monkeypatch.setenv("TWINE_USERNAME", "u")
    monkeypatch.setenv("TWINE_PASSWORD", "p")
    assert publish_model.main(["--upload-only", "--dist", str(tmp_path)]) == 1
    assert "ran only the tests marked 'training'" in capsys.readouterr().err
    record["tests_selected"] = None  # the same record from a full run goes on to the upload
    publish_model.write_record(tmp_path, record)
    monkeypatch.setattr(publish_model, "upload", lambda wheel, url: None)
    assert publish_model.main(["--upload-only", "--dist", str(tmp_path)]) == 0
