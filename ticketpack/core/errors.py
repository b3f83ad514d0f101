"""The one exception type for mistakes a user can make (bad names, bad files, bad options).

The CLI turns a :class:`TicketpackError` into one red line and exit code 2; anything else is a bug
and keeps its traceback.

The library speaks in the caller's terms: a message names the argument or config field that was wrong in backticks
(```level` 7 is not a round of this ticket``), the names a Python caller typed, and the error lists them in
:attr:`TicketpackError.fields`. The CLI, and only the CLI, rewrites each named field to its flag (``--level 7 is not a
round of this ticket``), so no message in the library mentions a command-line flag.
"""

from __future__ import annotations

import re

_FIELD = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)`")


class TicketpackError(Exception):
    """A user-caused error with a message that says what to do.

    ``fields``: the arguments or config fields (dotted: ``prune.rate``) the message names, each written in backticks in
    it (see :class:`FieldError`, which finds them itself)."""

    def __init__(self, message: str = "", *, fields: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message)
        self.fields: tuple[str, ...] = tuple(fields)

    def __reduce__(self):  # keeps ``fields`` across processes (transfer workers, Ray): Exception pickles args only
        return _rebuild, (type(self), str(self), self.fields, dict(self.__dict__))


def _rebuild(cls: type[TicketpackError], message: str, fields: tuple[str, ...], state: dict) -> TicketpackError:
    exc = cls.__new__(cls)
    TicketpackError.__init__(exc, message, fields=fields)
    exc.__dict__.update(state)
    return exc


def field(name: str) -> str:
    """How a message names the argument or config field ``name``: in backticks, which the CLI turns into its flag."""
    return f"`{name}`"


class FieldError(TicketpackError):
    """A value given for an argument or config field is wrong, or two of them disagree: every name in backticks in
    the message is a field (``FieldError(f"{field('level')} {level} is not a round of this ticket")``), unless
    ``fields`` says which."""

    def __init__(self, message: str = "", *, fields: tuple[str, ...] | list[str] | None = None) -> None:
        super().__init__(message, fields=tuple(dict.fromkeys(_FIELD.findall(message))) if fields is None else fields)


class GateFailed(TicketpackError):
    """A quality gate (accuracy, latency, size, integrity) did not pass: exit code 1, not 2."""

    exit_code = 1
