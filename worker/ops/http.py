"""The operations endpoints, and running the app with them (`python -m worker run`).

`/health`: the process is alive (200). `/ready`: broker, database and consumer checks, 200 or
503 with the report as JSON. `/metrics`: Prometheus text format. The app is an
`AsgiFastStream`; uvicorn serves it on `HTTP_HOST:HTTP_PORT` (`HTTP_PORT=0`: no HTTP at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator

import structlog
import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.handlers import HttpHandler
from faststream.asgi.response import JSONResponse
from faststream.asgi.types import Scope

from worker.errors import ConfigurationError
from worker.ops import metrics
from worker.ops.readiness import CHECK_TIMEOUT_S, Readiness

log = structlog.get_logger(__name__)

GRACEFUL_HTTP_STOP_S = 5


def operational_routes(readiness: Readiness) -> list[tuple[str, HttpHandler]]:
    @get(include_in_schema=False)
    async def health(scope: Scope) -> AsgiResponse:
        return JSONResponse({"status": "ok"})

    @get(include_in_schema=False)
    async def ready(scope: Scope) -> AsgiResponse:
        report = await readiness.check()
        return JSONResponse(report, 200 if report["ready"] else 503)

    @get(include_in_schema=False)
    async def prometheus(scope: Scope) -> AsgiResponse:
        consumer = readiness.consumer()
        if consumer is not None and consumer.assignment():
            with contextlib.suppress(Exception):  # the last known lag is served instead
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    await readiness.progress.lag(consumer)
        body, content_type = metrics.exposition()
        return AsgiResponse(body, 200, {"content-type": content_type})

    return [("/health", health), ("/ready", ready), ("/metrics", prometheus)]


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: `serve` owns SIGTERM/SIGINT, so the process exits
    0 after a clean stop instead of uvicorn re-raising the signal."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    try:
        return socket.create_server((host, port), reuse_port=False)
    except OSError as error:
        raise ConfigurationError(
            f"HTTP_HOST/HTTP_PORT {host}:{port}: {error.strerror or error}"
        ) from None


async def serve(app: AsgiFastStream, *, host: str, port: int) -> None:
    """Start the app (lifespan hooks, broker), serve HTTP on `port` unless it is 0, and stop
    everything cleanly on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sock = bind(host, port) if port else None  # before startup: a taken port fails at once
    try:
        async with app.start_lifespan_context():
            if sock is None:
                await stop.wait()
            else:
                await _serve_http(app, sock, stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if sock is not None:
            sock.close()


async def _serve_http(app: AsgiFastStream, sock: socket.socket, stop: asyncio.Event) -> None:
    config = uvicorn.Config(
        app,
        lifespan="off",  # the app is started around the server, not by it
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_HTTP_STOP_S,
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="http")
    host, port = sock.getsockname()[:2]
    log.info("http_listening", host=host, port=port)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopping.cancel()
    await serving  # re-raises if the server failed
