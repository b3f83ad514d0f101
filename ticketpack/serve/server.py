"""Starting the server: bind the port first (a taken port is a clear error), then uvicorn with one process or
``workers`` processes (each with its own sessions, settings passed through variables set only while it runs);
SIGINT/SIGTERM end serving after uvicorn's graceful shutdown; stale metrics directories are cleaned."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import BaseModel, Field

from ticketpack.core.config_files import with_overrides
from ticketpack.core.errors import FieldError, TicketpackError
from ticketpack.core.events import OnEvent, resolve_on_event, status
from ticketpack.serve.config import (
    CONFIG_ENV,
    FAST_PATH_ENV,
    PARENT_ENV,
    ModelSource,
    ServeConfig,
)
from ticketpack.serve.models import ServedModel, load_models
from ticketpack.serve.routes import create_app

METRICS_PREFIX = "ticketpack-metrics-"


def _log_config(access_log: bool) -> dict:
    from uvicorn.config import LOGGING_CONFIG

    cfg = {**LOGGING_CONFIG, "handlers": {k: dict(v) for k, v in LOGGING_CONFIG["handlers"].items()}}
    cfg["handlers"]["access"]["stream"] = "ext://sys.stderr"  # stdout is for results, logs go to stderr
    cfg["loggers"] = {**cfg["loggers"], "ticketpack.serve": {"handlers": ["default"], "level": "INFO"}}
    return cfg


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket up front, so a taken port is a clear error and port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only then, and without
    # it every keep-alive response waits for the client's delayed ACK (~40 ms on Linux).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise TicketpackError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


@contextmanager
def _signals_end_serving():
    """uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown; once it has shut down, the signal has done its
    job, so `serve` returns normally (exit 0) instead of dying by the signal or a KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def clean_stale_metrics_dirs(tmp: str | None = None) -> list[str]:
    """Remove the metrics directories (``ticketpack-metrics-PID-*``) of `serve` processes that no longer run."""
    from ticketpack.core.fileio import _pid_alive

    tmp = tmp or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(tmp)
    except OSError:
        return removed
    for name in names:
        m = re.fullmatch(re.escape(METRICS_PREFIX) + r"(\d+)-\w+", name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)
            removed.append(name)
    return removed


class ServeResult(BaseModel):
    """What a ``serve`` call did, once it has stopped: where it listened, what it served, for how long."""

    url: str = Field(description="The address it listened on (http://host:port).")
    models: list[str] = Field(description="The names of the models it served.")
    workers: int = Field(ge=1, description="Server processes.")
    seconds: float = Field(ge=0, description="Wall time from the call to the end of serving.")


def serve(
    models: Sequence[str | Path | ModelSource] | ServeConfig | None = None,
    config: ServeConfig | None = None,
    *,
    on_event: OnEvent | None = None,
    on_ready: Callable[[str, dict[str, ServedModel]], None] | None = None,
    fast_path: bool = True,
    **overrides: Any,
) -> ServeResult:
    """Validate and load every model, then serve until SIGINT/SIGTERM; returns a :class:`ServeResult` once stopped.
    Raises :class:`TicketpackError` if a model fails its checks (before the port is bound).

    ``models``: ONNX files (``"name=path.onnx"`` or a path: the name is its stem) or :class:`ModelSource` s; they
    replace ``config.models``. ``config``: a :class:`ServeConfig`; ``overrides``: any of its fields
    (``serve(["digits.onnx"], port=0, workers=1)``). ``on_event`` gets ``Event("status", stage="serve", ...)``
    when the models load and when the port is bound; ``on_ready(url, models)`` is called once the port is bound,
    before requests are taken. ``fast_path``: see :func:`create_app`. ``serve(config)``, the call of earlier
    releases, still works with a DeprecationWarning.
    """
    started = time.perf_counter()
    if isinstance(models, ServeConfig):
        warnings.warn("serve(config) is deprecated: call serve(models, config) or serve(config=config)",
                      DeprecationWarning, stacklevel=2)
        if config is not None:
            raise TypeError("pass the ServeConfig once: serve(config=config)")
        models, config = None, models
    if models is not None:
        overrides["models"] = [m if isinstance(m, ModelSource) else ModelSource.parse(str(m)) for m in models]
    if config is None and "models" not in overrides:
        raise FieldError("serve: `models` is empty: give at least one exported ONNX file", fields=["models"])
    config = with_overrides(ServeConfig, config, overrides, "serve")
    say = status(resolve_on_event(on_event, "serve"), "serve")
    if config.workers > 1 and config.port == 0:
        raise FieldError("`port` 0 (any free port) needs `workers` 1; give a port for several workers")
    say(f"validating {len(config.models)} model{'s' * (len(config.models) != 1)}")
    served = load_models(config)
    url = _run(config, served, fast_path, say, on_ready)
    return ServeResult(url=url, models=list(served), workers=config.workers,
                       seconds=round(time.perf_counter() - started, 3))


def _run(config: ServeConfig, models: dict[str, ServedModel], fast_path: bool, say: Callable[[str], None],
         on_ready: Callable[[str, dict[str, ServedModel]], None] | None) -> str:
    """Bind the port and run uvicorn until it stops; the URL it listened on."""
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    common = dict(
        log_config=_log_config(config.access_log), access_log=config.access_log,
        timeout_graceful_shutdown=config.shutdown_timeout_s, lifespan="on",
    )
    if config.workers == 1:
        server = uvicorn.Server(uvicorn.Config(create_app(config, models, fast_path), **common))
        say(f"serving on {url}")
        if on_ready:
            on_ready(url, models)
        try:
            with _signals_end_serving():
                server.run(sockets=[sock])
        finally:
            sock.close()
        return url
    sock.close()  # the port is free: uvicorn's supervisor binds it and hands it to its worker processes
    say(f"serving on {url} with {config.workers} workers")
    if on_ready:
        on_ready(url, models)
    del models  # each worker opens its own sessions
    clean_stale_metrics_dirs()
    metrics_dir = tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}-")
    worker_env = {  # uvicorn starts its workers from import strings: they read their settings here (serve.worker)
        CONFIG_ENV: config.model_dump_json(), PARENT_ENV: str(os.getpid()), "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        FAST_PATH_ENV: "1" if fast_path else "0",
    }
    try:
        with _environ(worker_env):
            uvicorn.run("ticketpack.serve.worker:create_app", factory=True, workers=config.workers, host=config.host,
                        port=config.port, http="ticketpack.serve.worker:NoDelayHTTPProtocol", **common)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return url


@contextmanager
def _environ(values: dict[str, str]):
    """``values`` in os.environ while the block runs (uvicorn's worker processes inherit it), then as before: a
    caller of serve() keeps its environment."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
