"""Files and clusters: CSV and Parquet files of any size scored in bounded
memory (:func:`score_file`), the same on a Dask cluster (``dask_scoring``),
and large test inputs made by resampling the bundled houses (``resample``).

    from regression_model.batch import score_file

The modules behind ``score_file`` (``columns``, ``readers``, ``writers``,
``run``, ``errors``, ``formats``) are internal: import from here.
"""

from regression_model.batch.columns import ERRORS_COLUMN
from regression_model.batch.errors import (
    BatchFileError,
    InputFileError,
    Interrupted,
    MissingDependencyError,
    OutputFileError,
    ScoringSetupError,
)
from regression_model.batch.formats import EXTENSIONS, FORMATS
from regression_model.batch.run import Counts, score_file, score_frame

__all__ = [
    "ERRORS_COLUMN",
    "EXTENSIONS",
    "FORMATS",
    "BatchFileError",
    "Counts",
    "InputFileError",
    "Interrupted",
    "MissingDependencyError",
    "OutputFileError",
    "ScoringSetupError",
    "score_file",
    "score_frame",
]
