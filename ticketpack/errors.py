"""The one exception type for mistakes a user can make (bad names, bad files, bad options).

The CLI turns a :class:`TicketpackError` into one red line and exit code 2; anything else is a bug
and keeps its traceback.
"""


class TicketpackError(Exception):
    """A user-caused error with a message that says what to do."""


class GateFailed(TicketpackError):
    """A quality gate (accuracy, latency, size, integrity) did not pass: exit code 1, not 2."""

    exit_code = 1
