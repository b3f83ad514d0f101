"""Starting the server: bind the port first (a taken port is a clear error), then uvicorn with one process or
``workers`` processes (each with its own sessions, settings passed through variables set only while it runs);
SIGINT/SIGTERM end serving after uvicorn's graceful shutdown; stale metrics directories are cleaned."""

import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable
from contextlib import contextmanager

import uvicorn

from ticketpack.core.errors import FieldError, TicketpackError
from ticketpack.serve.config import CONFIG_ENV, FAST_PATH_ENV, PARENT_ENV, ServeConfig
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


def serve(config: ServeConfig, on_ready: Callable[[str, dict[str, ServedModel]], None] | None = None,
          fast_path: bool = True) -> None:
    """Validate and load every model, then serve until SIGINT/SIGTERM. Raises TicketpackError if a model fails.

    ``on_ready(url, models)`` is called once the port is bound, before requests are taken. ``fast_path``: see
    :func:`create_app`.
    """
    if config.workers > 1 and config.port == 0:
        raise FieldError("`port` 0 (any free port) needs `workers` 1; give a port for several workers")
    models = load_models(config)
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    common = dict(
        log_config=_log_config(config.access_log), access_log=config.access_log,
        timeout_graceful_shutdown=config.shutdown_timeout_s, lifespan="on",
    )
    if config.workers == 1:
        server = uvicorn.Server(uvicorn.Config(create_app(config, models, fast_path), **common))
        if on_ready:
            on_ready(url, models)
        try:
            with _signals_end_serving():
                server.run(sockets=[sock])
        finally:
            sock.close()
        return
    sock.close()  # the port is free: uvicorn's supervisor binds it and hands it to its worker processes
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
