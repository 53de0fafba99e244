"""The errors of `cnndsl train`, `eval` and `predict` that are the user's to fix.

A bad data path, a dataset that does not fit the spec, a corrupted checkpoint, a loss
that diverged: each is a `TrainError` (or a `DataError`, which lives in `cnndsl.data.errors`), a `cnndsl.errors.CnndslError`, so that the CLI's
`main()` prints it as `error: ...` with a hint on the next line and exits 1, never with a
traceback. Library code raises these; only the CLI prints them. This module imports
neither torch nor numpy, so that the data and train packages can raise errors before
the heavy imports.
"""

from __future__ import annotations

from ..data.errors import DataError
from ..errors import CnndslError

__all__ = ["CheckpointError", "DataError", "Diverged", "Interrupted", "TrainError"]


class TrainError(CnndslError):
    """A failure the user can act on: `message` says what, `hint` says what to do."""


class CheckpointError(TrainError):
    """A checkpoint that is missing, truncated, corrupted or not cnndsl's."""


class Interrupted(TrainError):
    """Ctrl-C or SIGTERM: the state was saved and the run can go on with --resume."""

    exit_code = 130


class Diverged(TrainError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
