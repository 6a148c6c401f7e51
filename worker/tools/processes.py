"""`python -m worker run --workers N`: N worker processes, each one member of the consumer group.

The parent is FastStream's own multi-process supervisor (what `faststream run --workers N` runs):
it spawns the children, replaces one that dies (same number), and on SIGTERM/SIGINT stops them
all. Each child is what `run` is with one process: it builds the app from the settings and serves
it, HTTP on `HTTP_PORT` + its number (0..N-1), so every process has its own /ready and /metrics.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog
from faststream._internal.cli.dto import RunArgs
from faststream._internal.cli.supervisors.multiprocess import Multiprocess
from faststream._internal.cli.supervisors.utils import stop_process
from faststream._internal.logger import logger as supervisor_log

from worker.errors import ConfigurationError, WorkerError
from worker.ingest.consumer import require_co_partitioned
from worker.ops.logs import configure_logging
from worker.settings import Settings, load_settings
from worker.store.database import open_database
from worker.tools.event_loop import run_on_event_loop

log = structlog.get_logger(__name__)

MAX_PORT = 65535
EXIT_USAGE = 2  # as worker/__main__.py: the child's start-up failed on its settings or a dependency


class _Supervisor(Multiprocess):
    """FastStream's supervisor, stopping the children at once so that they drain side by side
    (its own shutdown signals one, waits for it, then the next: N drains in a row)."""

    def shutdown(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            stop_process(process)  # waits for the drain; SIGKILL only past FastStream's timeout


async def check_before_start(settings: Settings, workers: int) -> None:
    """What every child checks as it starts, checked once by the parent first: a child that
    fails them exits, and the supervisor would replace it again and again."""
    check_ports(settings, workers)
    await require_co_partitioned(
        settings.kafka_bootstrap_servers,
        turn_topic=settings.turn_topic,
        override_topic=settings.override_topic,
    )
    async with open_database(settings.database_url, max_size=1, role=settings.db_role) as db:
        await db.require_migrated()


def check_ports(settings: Settings, workers: int) -> None:
    """The children serve HTTP on `HTTP_PORT` .. `HTTP_PORT` + N - 1: all must be ports."""
    if settings.http_port and settings.http_port + workers - 1 > MAX_PORT:
        raise ConfigurationError(
            f"HTTP_PORT {settings.http_port} with --workers {workers}: the processes serve "
            f"HTTP on {settings.http_port}..{settings.http_port + workers - 1}, past {MAX_PORT}"
        )


def supervise(workers: int) -> None:
    """Run `workers` children until SIGTERM/SIGINT; blocks (FastStream's supervisor polls)."""
    # FastStream's own logger prints coloured text lines; through the root handler its
    # warnings and errors (a child that died and is replaced) are JSON lines like ours.
    supervisor_log.handlers.clear()
    supervisor_log.propagate = True
    supervisor_log.setLevel(logging.WARNING)
    # RunArgs.app is FastStream's (the app it would import); run_child builds ours itself.
    _Supervisor(target=run_child, args=RunArgs(app="worker.app:create_app"), workers=workers).run()


def run_child(args: RunArgs) -> None:
    """One worker process; spawned, so it loads the settings and builds everything itself."""
    number = int(str(args.extra_options["worker_id"]))
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    structlog.contextvars.bind_contextvars(worker_process=number)  # on every line it logs
    log.info("worker_process_started", pid=os.getpid())
    port = settings.http_port + number if settings.http_port else 0
    try:
        run_on_event_loop(_serve(settings, port))
    except WorkerError as error:  # one line, as `run` reports it; the supervisor starts another
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:  # Ctrl+C reaches every process of the group, even one starting
        return
    log.info("worker_process_stopped", pid=os.getpid())


async def _serve(settings: Settings, port: int) -> None:
    from worker.app import create_app  # imports litellm: in the child, not the supervisor
    from worker.ops.http import serve

    await serve(create_app(settings), host=settings.http_host, port=port)
