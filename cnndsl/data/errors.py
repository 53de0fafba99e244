"""The data package's one error: a dataset that cannot be read, or that does not fit.

A `DataError` is a `cnndsl.errors.CnndslError`, so the command line prints it as
`error: ...` with its hint and exits 1. It lives here, not in `cnndsl.train`, so that
the data readers depend on nothing of the training side (train imports data, never the
other way round). No torch, no numpy.
"""

from __future__ import annotations

from ..errors import CnndslError


class DataError(CnndslError):
    """A dataset that cannot be read, or that does not fit the spec's input."""
