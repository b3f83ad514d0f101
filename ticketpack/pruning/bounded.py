"""A time bound on Torch-Pruning's tracing, so that a model it cannot handle stops with a message instead of a
silent hang (issue 24: a Swin transformer traced for over 900 s and wrote nothing).

Tracing is pure Python, so a ``SIGALRM`` timer interrupts it wherever it is; the handler then looks down the
interrupted stack for the innermost layer of the model being worked on, which the message names. A signal timer
exists only in a process's main thread (and not on Windows): elsewhere, or when another timer is already running,
the trace runs unbounded. The previous handler is put back when the block ends: nothing outlives the call.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from torch import nn

from ticketpack.core.errors import TicketpackError

TRACE_SECONDS = 45.0  # a traced model that takes longer is reported, not waited for (start-up, data and the model
# build come before it: the whole search then fails within a minute)


class _Expired(BaseException):
    """Raised into the bounded block by the timer (a BaseException, so that no ``except Exception`` in the traced
    library swallows it)."""

    def __init__(self, frame: FrameType | None) -> None:
        super().__init__()
        self.frame = frame


def _layer_in(frame: FrameType | None, names: dict[int, str]) -> str | None:
    """The innermost named layer of the model in any local variable of the interrupted stack."""
    while frame is not None:
        for value in frame.f_locals.values():
            for candidate in (value, getattr(value, "module", None), getattr(getattr(value, "target", None), "module", None)):
                if isinstance(candidate, nn.Module) and names.get(id(candidate)):
                    return f"{names[id(candidate)]} ({type(candidate).__name__})"
        frame = frame.f_back
    return None


def failing_layer(model: nn.Module, exc: BaseException) -> str | None:
    """The innermost layer of ``model`` that the frames of ``exc``'s traceback were working on, as
    ``name (Class)``: what an error raised inside Torch-Pruning's trace names."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return _layer_in(tb.tb_frame if tb is not None else None, {id(m): n for n, m in model.named_modules() if n})


def _can_bound() -> bool:
    return (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
            and signal.getitimer(signal.ITIMER_REAL)[0] == 0)


@contextmanager
def bounded(model: nn.Module, what: str, seconds: float | None = None) -> Iterator[None]:
    """Run the block for at most ``seconds`` (:data:`TRACE_SECONDS`); past that, raise :class:`TicketpackError`
    naming the layer it was at."""
    seconds = TRACE_SECONDS if seconds is None else seconds
    if not _can_bound():
        yield
        return

    def expire(_signum: int, frame: FrameType | None) -> None:
        raise _Expired(frame)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Expired as exc:
        names = {id(m): n for n, m in model.named_modules() if n}
        at = _layer_in(exc.frame, names)
        where = f" at layer {at}" if at else ""
        raise TicketpackError(f"{what}: Torch-Pruning did not finish tracing {type(model).__name__} within "
                              f"{seconds:g} s{where}; weight granularity does not trace the model") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
