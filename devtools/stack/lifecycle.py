"""The whole stack under one root: `stack up` (start or reuse both servers), `down` and `status`.

Each server's data directory is the source of truth about it (`postmaster.pid`, `broker.json`);
`stack.json` is a summary for humans and tools, and `env.sh` exports the URLs for a shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import shlex
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from devtools.stack.broker import BrokerProcess, create_topics, running_broker, start_broker
from devtools.stack.postgres import PostgresProcess, running_postgres, start_postgres
from devtools.stack.postgres_setup import PG_USER
from devtools.stack.processes import port_is_free, write_atomically

STACK_FILE = "stack.json"
ENV_FILE = "env.sh"

Migrate = Callable[[str], Awaitable[object]]


@dataclass(frozen=True, kw_only=True)
class StackInfo:
    root: Path
    postgres_port: int
    kafka_port: int
    postgres_pid: int
    broker_pid: int

    @property
    def database_url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.postgres_port}/postgres"

    @property
    def kafka_bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def export_lines(self) -> str:
        return (
            f"export KAFKA_BOOTSTRAP_SERVERS={shlex.quote(self.kafka_bootstrap_servers)}\n"
            f"export DATABASE_URL={shlex.quote(self.database_url)}\n"
        )

    def to_json(self) -> str:
        fields = {
            "root": str(self.root),
            "postgres_port": self.postgres_port,
            "kafka_port": self.kafka_port,
            "postgres_pid": self.postgres_pid,
            "broker_pid": self.broker_pid,
        }
        return json.dumps(fields, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StackInfo:
        raw = json.loads(text)
        return cls(
            root=Path(raw["root"]),
            postgres_port=int(raw["postgres_port"]),
            kafka_port=int(raw["kafka_port"]),
            postgres_pid=int(raw["postgres_pid"]),
            broker_pid=int(raw["broker_pid"]),
        )


@dataclass(frozen=True, kw_only=True)
class StackStatus:
    info: StackInfo  # what stack.json records
    postgres_running: bool
    broker_running: bool

    @property
    def all_running(self) -> bool:
        return self.postgres_running and self.broker_running


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Serialise stack commands on one root (two `stack up` at once must not start two servers)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _read_info(root: Path) -> StackInfo | None:
    try:
        return StackInfo.from_json((root / STACK_FILE).read_text())
    except (FileNotFoundError, ValueError, KeyError):
        return None


def _preferred(port: int | None) -> int | None:
    # Coming back on the recorded port keeps an already exported env.sh valid.
    return port if port is not None and port_is_free(port) else None


def _ensure_servers(root: Path, durable: bool) -> tuple[PostgresProcess, BrokerProcess]:
    with _locked(root):
        previous = _read_info(root)
        postgres = running_postgres(root / "postgres") or start_postgres(
            root / "postgres",
            port=_preferred(previous.postgres_port if previous else None),
            durable=durable,
        )
        broker = running_broker(root / "broker") or start_broker(
            root / "broker", port=_preferred(previous.kafka_port if previous else None)
        )
        return postgres, broker


def _record(root: Path, postgres: PostgresProcess, broker: BrokerProcess) -> StackInfo:
    info = StackInfo(
        root=root,
        postgres_port=postgres.port,
        kafka_port=broker.port,
        postgres_pid=postgres.pid,
        broker_pid=broker.pid,
    )
    write_atomically(root / STACK_FILE, info.to_json())
    write_atomically(root / ENV_FILE, info.export_lines())
    return info


async def stack_up_async(
    root: Path = Path(".stack"),
    *,
    topics: Sequence[str],
    partitions: int = 8,
    durable: bool = True,
    migrate: Migrate | None = None,
) -> StackInfo:
    """`stack_up` for callers that already run an event loop."""
    root = await asyncio.to_thread(Path.resolve, root)
    postgres, broker = await asyncio.to_thread(_ensure_servers, root, durable)
    # Always: a restarted broker has lost its topics, and the topic list may have grown.
    await create_topics(broker.bootstrap_servers, topics, partitions=partitions)
    if migrate is not None:
        await migrate(postgres.url)
    return await asyncio.to_thread(_record, root, postgres, broker)


def stack_up(
    root: Path = Path(".stack"),
    *,
    partitions: int = 8,
    topics: Sequence[str],
    durable: bool = True,
    migrate: Migrate | None = None,
) -> StackInfo:
    """Start (or reuse) PostgreSQL and the broker under `root`, create topics, run `migrate`.

    Runs its own event loop: call `stack_up_async` from async code.
    """
    return asyncio.run(
        stack_up_async(root, topics=topics, partitions=partitions, durable=durable, migrate=migrate)
    )


def stack_down(root: Path = Path(".stack")) -> bool:
    """Stop both servers of the stack under `root`; True if anything was running."""
    root = root.resolve()
    with _locked(root):
        postgres = running_postgres(root / "postgres")
        broker = running_broker(root / "broker")
        stopped = [server.stop() for server in (postgres, broker) if server is not None]
        (root / STACK_FILE).unlink(missing_ok=True)
        (root / ENV_FILE).unlink(missing_ok=True)
        return any(stopped)


def stack_status(root: Path = Path(".stack")) -> StackStatus | None:
    """What `stack.json` records and whether those servers still run; None if nothing recorded."""
    root = root.resolve()
    info = _read_info(root)
    if info is None:
        return None
    postgres = running_postgres(root / "postgres")
    broker = running_broker(root / "broker")
    return StackStatus(
        info=info,
        postgres_running=postgres is not None and postgres.port == info.postgres_port,
        broker_running=broker is not None and broker.port == info.kafka_port,
    )
