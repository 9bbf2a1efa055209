"""Save, verify and load the trained model artifact.

An artifact is ``<pipeline_name>_v<VERSION>.pkl`` (joblib) plus a JSON
manifest beside it. The pickle is only unpickled after its sha256 matches the
manifest, its version matches the package, its config matches the active
config, and the scikit-learn and feature-engine major.minor versions match the
ones it was trained with: a pickle from elsewhere is never executed.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import sys
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import joblib

from regression_model import __version__
from regression_model.config.core import Config, trained_model_dir
from regression_model.processing.data_manager import sha256_file

#: Libraries whose versions are recorded; the first two must match to load.
RECORDED_LIBRARIES = ("scikit-learn", "feature-engine", "pandas", "numpy", "joblib")
VERSION_CHECKED_LIBRARIES = ("scikit-learn", "feature-engine")

TRAIN_HINT = "train it with `regression-model train` (or `tox -e train`)"


class ArtifactError(RuntimeError):
    """The trained model cannot be used; the message says what to do."""


class ArtifactNotFoundError(ArtifactError):
    """No artifact for this version exists yet."""


class ArtifactIntegrityError(ArtifactError):
    """The pickle or its manifest was changed after training."""


class ArtifactCompatibilityError(ArtifactError):
    """The artifact was trained by other library versions or another config."""


@dataclass(frozen=True)
class ArtifactPaths:
    pickle: Path
    manifest: Path

    @classmethod
    def for_version(
        cls, config: Config, version: str = __version__, directory: Path | None = None
    ) -> ArtifactPaths:
        stem = f"{config.app.pipeline_name}_v{version}"
        folder = directory or trained_model_dir()
        return cls(pickle=folder / f"{stem}.pkl", manifest=folder / f"{stem}.json")


def library_versions() -> dict[str, str]:
    return {name: installed_version(name) for name in RECORDED_LIBRARIES}


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "libraries": library_versions(),
    }


def _canonical_sha256(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def seal_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with ``manifest_sha256`` over the rest of its content, so
    an edited manifest (metrics, versions, hashes) is detected at load."""
    return {**manifest, "manifest_sha256": _canonical_sha256(manifest)}


def save_artifact(model: object, manifest: dict[str, Any], paths: ArtifactPaths) -> dict[str, Any]:
    """Write the pickle, then the manifest naming its sha256.

    Other versions' artifacts in the same directory are left alone.
    """
    paths.pickle.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, paths.pickle)
    manifest = seal_manifest(
        {**manifest, "artifact": {"file": paths.pickle.name, "sha256": sha256_file(paths.pickle)}}
    )
    paths.manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(paths: ArtifactPaths) -> dict[str, Any]:
    if not paths.manifest.exists() or not paths.pickle.exists():
        missing = paths.manifest if not paths.manifest.exists() else paths.pickle
        raise ArtifactNotFoundError(f"no trained model at {missing}: {TRAIN_HINT}")
    try:
        manifest = json.loads(paths.manifest.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactIntegrityError(
            f"manifest {paths.manifest} is unreadable ({exc}); {TRAIN_HINT} again"
        ) from exc
    if not isinstance(manifest, dict):
        raise ArtifactIntegrityError(
            f"manifest {paths.manifest} is not a JSON object; {TRAIN_HINT} again"
        )
    return manifest


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def verify_artifact(paths: ArtifactPaths, config: Config) -> dict[str, Any]:
    """Check the artifact against its manifest and this environment.

    Returns the manifest; raises an :class:`ArtifactError` subclass otherwise.
    Nothing is unpickled here.
    """
    return _verified(paths, config)[0]


def _verified(paths: ArtifactPaths, config: Config) -> tuple[dict[str, Any], bytes]:
    # The bytes that are hashed are the bytes that get unpickled: the file
    # cannot be swapped between the check and the load.
    manifest = read_manifest(paths)
    if manifest.get("manifest_sha256") != _canonical_sha256(manifest):
        raise ArtifactIntegrityError(
            f"manifest {paths.manifest} was edited after training (its manifest_sha256 "
            f"does not match its content); {TRAIN_HINT} again or reinstall the package"
        )
    try:
        expected_sha = manifest["artifact"]["sha256"]
        trained_version = manifest["version"]
        trained_config_sha = manifest["config"]["sha256"]
        trained_libraries = manifest["environment"]["libraries"]
    except (KeyError, TypeError) as exc:
        raise ArtifactIntegrityError(
            f"manifest {paths.manifest} lacks {exc}; {TRAIN_HINT} again"
        ) from exc
    payload = paths.pickle.read_bytes()
    actual_sha = hashlib.sha256(payload).hexdigest()
    if actual_sha != expected_sha:
        raise ArtifactIntegrityError(
            f"{paths.pickle} does not match its manifest (sha256 {actual_sha}, "
            f"manifest says {expected_sha}): the file was modified or replaced. "
            f"Refusing to load it; {TRAIN_HINT} again or reinstall the package."
        )
    if trained_version != __version__:
        raise ArtifactCompatibilityError(
            f"{paths.pickle} was trained as version {trained_version}, "
            f"the package is {__version__}; {TRAIN_HINT}"
        )
    if trained_config_sha != config.sha256:
        raise ArtifactCompatibilityError(
            f"{paths.pickle} was trained with a different config than "
            f"{config.source} (sha256 {trained_config_sha} vs {config.sha256}); "
            f"{TRAIN_HINT} with this config"
        )
    current = library_versions()
    for library in VERSION_CHECKED_LIBRARIES:
        trained = str(trained_libraries.get(library, "?"))
        if _major_minor(trained) != _major_minor(current[library]):
            raise ArtifactCompatibilityError(
                f"{paths.pickle} was trained with {library} {trained}, this "
                f"environment has {current[library]}: install {library}=="
                f"{trained} (see constraints.txt) or {TRAIN_HINT} here"
            )
    return manifest, payload


def load_artifact(config: Config, directory: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """Verify, then unpickle, the artifact of this package version."""
    paths = ArtifactPaths.for_version(config, directory=directory)
    manifest, payload = _verified(paths, config)
    return joblib.load(io.BytesIO(payload)), manifest
