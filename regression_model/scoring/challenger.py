"""A challenger: another model's compiled tables, loaded by path beside the
package's own model, to price the same houses and be compared with it
(the service shadows its requests with one; ``regression-model compare``).

The challenger is verified as strictly as the package's model (the
manifest's seal, the tables' sha256 and format) but may be another model
version, trained with another config. It is validated and scored against
the active config's inputs (houses are checked once, by the same rules for
both models), so its tables must name only variables that config has: a
challenger built for other inputs is refused, not scored approximately.
"""

from __future__ import annotations

from pathlib import Path

from regression_model.config.core import get_config
from regression_model.scoring.artifact import ArtifactCompatibilityError, load_challenger_tables
from regression_model.scoring.model import CompiledModel
from regression_model.scoring.terms import TablesFormatError


def load_challenger(directory: Path | str) -> CompiledModel:
    """The model whose artifact is in ``directory`` (exactly one version's
    manifest and tables), verified, as a :class:`CompiledModel` whose
    ``version`` is its own. Raises an ``ArtifactError`` subclass saying why
    it cannot be used. Each call loads it afresh."""
    config = get_config()
    folder = Path(directory)
    tables, manifest = load_challenger_tables(config, folder)
    try:
        return CompiledModel(config, tables, manifest, folder)
    except (TablesFormatError, ValueError) as exc:
        raise ArtifactCompatibilityError(
            f"the challenger in {folder} cannot be scored with the inputs of {config.source} "
            f"({exc}); a challenger must be trained for the same inputs"
        ) from exc


def challenger_label(model: CompiledModel) -> str:
    """How a challenger's prices are labelled: its version and the start of
    its tables' sha256 (``0.3.0+1a2b3c4d5e6f``), so that two models of the
    same version, trained differently, are told apart."""
    return f"{model.version}+{model.manifest['tables']['sha256'][:12]}"
