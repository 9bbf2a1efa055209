"""Save, verify and load the trained model artifact.

An artifact is three files named ``<pipeline_name>_v<VERSION>``:

- ``.tables.json``: the compiled model tables (plain data, see ``scoring/tables.py``),
  what serving loads: reading it cannot execute code and needs no
  scikit-learn;
- ``.pkl``: the fitted pipeline (joblib), for training-side checks and
  ``engine="pipeline"``;
- ``.json``: the manifest, with the sha256 of both, the data and config
  hashes, library versions, metrics and the training profile, sealed by a
  hash of its own content.

Either model file is used only after the manifest's seal, version and config
match and the file's sha256 is the manifest's (the bytes hashed are the bytes
read). The libraries that compute its prices are checked against the
versions recorded at training: the pickle needs their major.minor
(scikit-learn, feature-engine, pandas, numpy and joblib: an unpickled
estimator may not work, or work differently, under another); the tables,
plain data scored with numpy, load under another numpy with a
:class:`LibraryVersionWarning` (its IEEE arithmetic is the same; only the
last bits of ``log``/``exp`` may differ, as they do between CPUs' SIMD
paths), so that ``pip install`` with a newer numpy still serves. The tables
need their format version too. Anything unreadable or
malformed is an :class:`ArtifactError`, never a raw exception.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import operator
import platform
import sys
import warnings
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

from regression_model.config.core import Config, trained_model_dir
from regression_model.scoring.tables import FORMAT, ModelTables
from regression_model.scoring.terms import TablesFormatError
from regression_model.version import __version__

#: Libraries whose versions are recorded.
RECORDED_LIBRARIES = ("scikit-learn", "feature-engine", "pandas", "numpy", "joblib")
#: Per model file, the libraries that compute its prices (the tables are
#: scored with numpy; the pipeline unpickled by joblib and run by all of
#: them), and whether another major.minor refuses it (True) or warns (False).
CHECKED_LIBRARIES: dict[str, tuple[tuple[str, ...], bool]] = {
    "tables": (("numpy",), False),
    "pickle": (RECORDED_LIBRARIES, True),
}

TRAIN_HINT = "train it with `regression-model train` (or `tox -e train`)"


class ArtifactError(RuntimeError):
    """The trained model cannot be used; the message says what to do."""


class LibraryVersionWarning(UserWarning):
    """The model tables were compiled under another numpy major.minor: they
    load (plain data), and prices may differ from training's in the last bits."""


class ArtifactNotFoundError(ArtifactError):
    """No artifact for this version exists yet."""


class ArtifactIntegrityError(ArtifactError):
    """The pickle or its manifest was changed after training."""


class ArtifactCompatibilityError(ArtifactError):
    """The artifact was trained by other library versions or another config."""


@dataclass(frozen=True)
class ArtifactPaths:
    pickle: Path
    tables: Path
    manifest: Path
    #: the directory `regression-model report` writes beside the artifact
    report: Path

    @classmethod
    def for_version(
        cls, config: Config, version: str = __version__, directory: Path | None = None
    ) -> ArtifactPaths:
        stem = f"{config.app.pipeline_name}_v{version}"
        folder = directory or trained_model_dir()
        return cls(
            pickle=folder / f"{stem}.pkl",
            tables=folder / f"{stem}.tables.json",
            manifest=folder / f"{stem}.json",
            report=folder / f"{stem}_report",
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tables_bytes(tables: ModelTables) -> bytes:
    """The tables as written: JSON floats round-trip exactly (shortest repr)."""
    return (json.dumps(tables.to_dict(), indent=1) + "\n").encode()


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


def save_artifact(
    model: object, tables: ModelTables, manifest: dict[str, Any], paths: ArtifactPaths
) -> dict[str, Any]:
    """Write the pickle and the tables, then the manifest naming their sha256.

    Other versions' artifacts in the same directory are left alone.
    """
    import joblib

    paths.pickle.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, paths.pickle)
    paths.tables.write_bytes(tables_bytes(tables))
    manifest = seal_manifest(
        {
            **manifest,
            "artifact": {"file": paths.pickle.name, "sha256": sha256_file(paths.pickle)},
            "tables": {
                "file": paths.tables.name,
                "sha256": sha256_file(paths.tables),
                "format": tables.format,
            },
        }
    )
    paths.manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _recorded(paths: ArtifactPaths, manifest: dict[str, Any], *keys: str) -> list[Any]:
    """The manifest's entries at these keys (``"config.sha256"``: an entry's
    entry); one that is absent makes the manifest incomplete."""
    try:
        return [functools.reduce(operator.getitem, key.split("."), manifest) for key in keys]
    except (KeyError, TypeError) as exc:
        raise ArtifactIntegrityError(
            f"manifest {paths.manifest} lacks {exc}; {TRAIN_HINT} again"
        ) from exc


def _require_file(path: Path) -> None:
    if not path.exists():
        raise ArtifactNotFoundError(f"no trained model at {path}: {TRAIN_HINT}")


def read_manifest(paths: ArtifactPaths) -> dict[str, Any]:
    _require_file(paths.manifest)
    try:
        manifest = json.loads(paths.manifest.read_text())
    except (OSError, ValueError, RecursionError) as exc:
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
    """Check the whole artifact (manifest, tables and pickle) against its
    manifest and this environment. Returns the manifest; raises an
    :class:`ArtifactError` subclass otherwise. Nothing is unpickled here."""
    manifest = _checked_manifest(paths, config)
    _checked_tables(paths, manifest)
    _checked_pickle(paths, manifest)
    return manifest


def _sealed_manifest(paths: ArtifactPaths) -> dict[str, Any]:
    manifest = read_manifest(paths)
    try:
        sealed = manifest.get("manifest_sha256") == _canonical_sha256(manifest)
    except (RecursionError, ValueError):  # nested too deep to be written back
        sealed = False
    if not sealed:
        raise ArtifactIntegrityError(
            f"manifest {paths.manifest} was edited after training (its manifest_sha256 "
            f"does not match its content); {TRAIN_HINT} again or reinstall the package"
        )
    return manifest


def _checked_manifest(paths: ArtifactPaths, config: Config) -> dict[str, Any]:
    manifest = _sealed_manifest(paths)
    trained_version, trained_config_sha = _recorded(paths, manifest, "version", "config.sha256")
    if trained_version != __version__:
        raise ArtifactCompatibilityError(
            f"{paths.manifest} was trained as version {trained_version}, "
            f"the package is {__version__}; {TRAIN_HINT}"
        )
    if trained_config_sha != config.sha256:
        raise ArtifactCompatibilityError(
            f"{paths.manifest} was trained with a different config than "
            f"{config.source} (sha256 {trained_config_sha} vs {config.sha256}); "
            f"{TRAIN_HINT} with this config"
        )
    return manifest


def _checked_bytes(path: Path, expected: object) -> bytes:
    # The bytes that are hashed are the bytes that get used: the file cannot
    # be swapped between the check and the load.
    _require_file(path)
    try:
        payload = path.read_bytes()
    except OSError as exc:  # a directory, no permission
        raise ArtifactIntegrityError(
            f"{path} is unreadable ({exc}); {TRAIN_HINT} again or reinstall the package"
        ) from exc
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected:
        raise ArtifactIntegrityError(
            f"{path} does not match its manifest (sha256 {actual}, manifest says "
            f"{expected}): the file was modified or replaced. Refusing to load it; "
            f"{TRAIN_HINT} again or reinstall the package."
        )
    return payload


def _checked_tables(
    paths: ArtifactPaths, manifest: dict[str, Any], version: str = __version__
) -> ModelTables:
    expected_sha, trained_format = _recorded(paths, manifest, "tables.sha256", "tables.format")
    if trained_format != FORMAT:
        raise ArtifactCompatibilityError(
            f"{paths.tables} has tables format {trained_format}, this package reads format "
            f"{FORMAT}; {TRAIN_HINT} with this package, or install the package version "
            "that trained it"
        )
    _check_libraries(paths, manifest, "tables")
    payload = _checked_bytes(paths.tables, expected_sha)
    try:
        tables = ModelTables.from_dict(json.loads(payload))
    except (ValueError, TablesFormatError, RecursionError) as exc:
        raise ArtifactIntegrityError(
            f"{paths.tables} is unreadable ({exc}); {TRAIN_HINT}"
        ) from exc
    if tables.intervals is None:  # only the difficulty model inside has none
        raise ArtifactIntegrityError(
            f"{paths.tables} has no price ranges (its intervals are null); {TRAIN_HINT}"
        )
    if tables.version != version:
        raise ArtifactCompatibilityError(
            f"{paths.tables} holds model {tables.version}, "
            + (
                f"the package is {version}"
                if version == __version__
                else f"its manifest {version}"
            )
            + f"; {TRAIN_HINT}"
        )
    return tables


def _check_libraries(paths: ArtifactPaths, manifest: dict[str, Any], file: str) -> None:
    """The libraries that compute ``file``'s prices (``"tables"`` or
    ``"pickle"``) must be at the major.minor recorded at training."""
    path = paths.tables if file == "tables" else paths.pickle
    (trained_libraries,) = _recorded(paths, manifest, "environment.libraries")
    if not isinstance(trained_libraries, dict):
        raise ArtifactIntegrityError(
            f"manifest {paths.manifest}: environment.libraries is not a mapping of library "
            f"names to versions; {TRAIN_HINT} again"
        )
    libraries, refuses = CHECKED_LIBRARIES[file]
    for library in libraries:
        trained = str(trained_libraries.get(library, "?"))
        try:
            current = installed_version(library)
        except PackageNotFoundError:
            raise ArtifactCompatibilityError(
                f"{path} needs {library} {trained}, which is not installed: "
                "install the training extra, `pip install 'ames-regression-model[train]'`"
            ) from None
        if _major_minor(trained) == _major_minor(current):
            continue
        told = f"{path} was trained with {library} {trained}, this environment has {current}"
        if refuses:
            raise ArtifactCompatibilityError(
                f"{told}: install {library}=={trained} (see constraints.txt) or {TRAIN_HINT} here"
            )
        warnings.warn(
            f"{told}: prices may differ from training's in the last bits (install "
            f"{library}=={trained}, see constraints.txt, for training's exactly)",
            LibraryVersionWarning,
            stacklevel=2,
        )


def _checked_pickle(paths: ArtifactPaths, manifest: dict[str, Any]) -> bytes:
    (expected_sha,) = _recorded(paths, manifest, "artifact.sha256")
    payload = _checked_bytes(paths.pickle, expected_sha)
    _check_libraries(paths, manifest, "pickle")
    return payload


def load_tables(
    config: Config, directory: Path | None = None
) -> tuple[ModelTables, dict[str, Any]]:
    """Verify, then read, the compiled tables of this package version (the
    serving path: no unpickling, no scikit-learn)."""
    paths = ArtifactPaths.for_version(config, directory=directory)
    manifest = _checked_manifest(paths, config)
    return _checked_tables(paths, manifest), manifest


def load_pipeline(config: Config, directory: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """Verify, then unpickle, the fitted pipeline of this package version."""
    import joblib

    paths = ArtifactPaths.for_version(config, directory=directory)
    manifest = _checked_manifest(paths, config)
    payload = _checked_pickle(paths, manifest)
    return joblib.load(io.BytesIO(payload)), manifest


def challenger_paths(config: Config, directory: Path) -> ArtifactPaths:
    """The artifact in ``directory``, of whichever model version it holds:
    the directory must hold exactly one manifest of this model's name."""
    prefix = f"{config.app.pipeline_name}_v"
    versions = sorted(
        path.name[len(prefix) : -len(".json")]
        for path in directory.glob(f"{prefix}*.json")
        if not path.name.endswith(".tables.json")
    )
    if len(versions) != 1:
        found = ", ".join(versions) if versions else "none"
        raise ArtifactNotFoundError(
            f"a challenger directory holds the artifact of exactly one version; {directory} "
            f"holds {found} (manifests named {prefix}<version>.json)"
        )
    return ArtifactPaths.for_version(config, versions[0], directory)


def load_challenger_tables(config: Config, directory: Path) -> tuple[ModelTables, dict[str, Any]]:
    """Verify, then read, the compiled tables of another model (a challenger):
    the manifest's seal, the tables' sha256 and format are checked as for the
    package's own model, but the model version (the manifest's, which the file
    names and the tables must agree with) and the config it was trained with
    may differ. Nothing is unpickled."""
    paths = challenger_paths(config, directory)
    manifest = _sealed_manifest(paths)
    (version,) = _recorded(paths, manifest, "version")
    if paths.manifest != ArtifactPaths.for_version(config, str(version), directory).manifest:
        raise ArtifactIntegrityError(
            f"manifest {paths.manifest} says version {version}, its name another; "
            f"{TRAIN_HINT} again"
        )
    return _checked_tables(paths, manifest, version=str(version)), manifest
