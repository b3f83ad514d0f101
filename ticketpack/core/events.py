"""One progress callback for every stage: ``on_event``, called with an :class:`Event`.

Every stage (``search``, ``transfer``, ``export``, ``evaluate``, ``validate``, ``predict``, ``serve``, the demo) takes
``on_event=`` and calls it with an ``Event`` or a subclass of it: ``stage`` says which stage sent it, ``kind`` what
happened, ``message`` a line for a person (empty where the event's fields say it all). Search sends
:class:`~ticketpack.search.imp.SearchEvent` ("round_start", "step", "round_end"), transfer
:class:`~ticketpack.transfer.run.TransferEvent` ("planned", "job_end"); export, evaluate, validate (each check's
name), predict, serve and the demo send plain ``Event("status", stage=..., message=...)``.

The older names of the callback (``on_stage`` of export and the demo, ``on_progress`` of evaluate), which were
called with the message alone, keep working for one release with a :class:`DeprecationWarning`
(:func:`resolve_on_event`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

STATUS = "status"


@dataclass
class Event:
    """A progress event of one stage; subclasses add that stage's fields."""

    kind: str
    stage: str = field(default="", kw_only=True)
    message: str = field(default="", kw_only=True)

    def __str__(self) -> str:
        return self.message or f"{self.stage} {self.kind}".strip()


OnEvent = Callable[[Event], None]


def _ignore(_event: Event) -> None:
    return None


def status(on_event: OnEvent, stage: str) -> Callable[[str], None]:
    """``say(message)`` for a stage whose events are status lines: sends ``Event("status", stage=..., message=...)``."""
    return lambda message: on_event(Event(STATUS, stage=stage, message=message))


def resolve_on_event(on_event: OnEvent | None, stage: str, **deprecated: Callable[[str], None] | None) -> OnEvent:
    """The callback a stage calls: ``on_event``, or a deprecated name's callback (called with ``str(event)``, the
    message, as before) with a :class:`DeprecationWarning`; a no-op when neither was given."""
    for name, callback in deprecated.items():
        if callback is None:
            continue
        warnings.warn(f"`{name}` is deprecated and will be removed in the next release: pass `on_event`, which is "
                      f"called with an Event (its `message` is the line `{name}` was called with)",
                      DeprecationWarning, stacklevel=3)
        if on_event is not None:
            raise TypeError(f"pass `on_event` or the deprecated `{name}`, not both")
        on_event = lambda event, callback=callback: callback(str(event))
    return on_event or _ignore
