"""What goes wrong in batch scoring, one class per failure a user can act on:
a file that cannot be scored as given (:class:`InputFileError`,
:class:`OutputFileError`), a setup that cannot score here (a missing extra,
an unreachable cluster), and a run stopped by a signal."""

from __future__ import annotations

import signal


class BatchFileError(Exception):
    """A file cannot be scored as given; the message says which and why."""


class InputFileError(BatchFileError):
    """The input is missing, unreadable, malformed or lacks columns."""


class OutputFileError(BatchFileError):
    """The output cannot be written where asked."""


class ScoringSetupError(Exception):
    """Scoring cannot start here (a missing extra, an unreachable cluster)."""


class MissingDependencyError(ScoringSetupError, ImportError):
    """An optional dependency is needed; the message says how to install it."""


class Interrupted(Exception):  # noqa: N818 - it is not an error of the program
    """The run was stopped by a signal after ``rows`` rows (None: not known,
    as on Dask); nothing was kept."""

    def __init__(self, signum: int, rows: int | None = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum, self.rows = signum, rows
