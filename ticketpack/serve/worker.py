"""What uvicorn imports by name in each `serve --workers N` worker process: the HTTP protocol and the app factory.

Kept light (neither FastAPI nor ONNX is imported here), so that :func:`create_app` ties the worker to its parent
(:func:`ticketpack.core.lifeline.die_with_parent`) before the server's modules load. uvicorn takes the app as an import
string and its workers inherit the environment, so :func:`ticketpack.serve.app.serve` hands them their settings in
environment variables (``ticketpack.serve.config``: ``CONFIG_ENV``, ``PARENT_ENV``, ``FAST_PATH_ENV``), set only
while uvicorn runs and restored afterwards.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from ticketpack.serve.config import CONFIG_ENV, FAST_PATH_ENV, PARENT_ENV, ServeConfig


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol, setting TCP_NODELAY on each connection itself. Needed with several workers:
    uvicorn's supervisor binds the listener with proto 0, so asyncio leaves Nagle on (Kludex/uvicorn#3149)."""

    def connection_made(self, transport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def create_app() -> Any:
    """The app factory of a worker: die with `serve` (a killed `serve` leaves no worker behind), then build the app
    from the settings `serve` handed over; the parent validated the models already."""
    from ticketpack.core.lifeline import die_with_parent

    parent = os.environ.get(PARENT_ENV)
    die_with_parent(int(parent) if parent and parent.isdigit() else None)
    from ticketpack.serve.app import create_app as app_for
    from ticketpack.serve.models import load_models

    config = ServeConfig.model_validate_json(os.environ[CONFIG_ENV])
    return app_for(config, load_models(config, validate=False), fast_path=os.environ.get(FAST_PATH_ENV) != "0")
