"""What the benchmark measures while a scenario runs: the update stream, process CPU and memory,
PostgreSQL counters. No opinions about scenarios here (run.py) or output (report.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import psutil  # type: ignore[import-untyped]
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass(kw_only=True)
class UpdateReader:
    """Reads `qualification.updated` from the start; notes when each turn is first announced."""

    bootstrap_servers: str
    topic: str
    partitions: int
    seen: dict[str, float] = field(default_factory=dict)  # turn event_id -> monotonic time
    events: int = 0
    _task: asyncio.Task[None] | None = None
    _consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        # A short fetch wait: Tansu answers a waiting fetch only when the wait ends, not when
        # data arrives, and the instrument must not add its own latency to what it measures.
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=10
        )
        await self._consumer.start()
        # Assigned by hand, not through a group: no join delay, nothing to rebalance.
        parts = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        self._consumer.assign(parts)
        await self._consumer.seek_to_beginning(*parts)
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=50, max_records=10_000)
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    self._note(orjson.loads(record.value), now)

    def _note(self, event: dict[str, Any], now: float) -> None:
        self.events += 1
        for turn_id in event["turn_event_ids"]:
            self.seen.setdefault(turn_id, now)


@dataclass(kw_only=True)
class Publisher:
    """A producer for the benchmark's turns; `send` returns event_id -> send time."""

    bootstrap_servers: str
    topic: str
    _producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> Publisher:
        self._producer = _producer(self.bootstrap_servers)
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._producer is not None
        await self._producer.stop()

    async def send(self, payloads: list[dict[str, Any]], rate: float = 0.0) -> dict[str, float]:
        """Publish turn i at start + i / rate (a steady producer), or at once for rate 0;
        returns once the broker acknowledged them all."""
        assert self._producer is not None
        sent: dict[str, float] = {}
        futures = []
        start = time.monotonic()
        for i, p in enumerate(payloads):
            if rate and (delay := start + i / rate - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            sent[p["event_id"]] = time.monotonic()
            value = orjson.dumps(p)
            futures.append(await self._producer.send(self.topic, value=value, key=_key(p)))
        await asyncio.gather(*futures)
        return sent


async def produce_all(
    bootstrap_servers: str, topic: str, payloads: list[dict[str, Any]], rate: float = 0.0
) -> dict[str, float]:
    async with Publisher(bootstrap_servers=bootstrap_servers, topic=topic) as publisher:
        return await publisher.send(payloads, rate)


def _producer(bootstrap_servers: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, enable_idempotence=False, linger_ms=2
    )


def _key(p: dict[str, Any]) -> bytes:
    return f"{p['tenant_id']}:{p['account_id']}:{p['contact_id']}".encode()


# --- processes ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (0 once it is gone)."""
    with contextlib.suppress(psutil.Error):
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    return 0.0


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a live process and its live descendants (`run --workers N`: the supervisor and
    its N worker processes)."""
    with contextlib.suppress(psutil.Error):
        children = psutil.Process(pid).children(recursive=True)
        return cpu_seconds(pid) + sum(cpu_seconds(c.pid) for c in children)
    return 0.0


def peak_rss_by_process(pid: int) -> dict[int, float]:
    """VmHWM of a process and of each live descendant, by pid: the peak RSS per process."""
    pids = [pid]
    with contextlib.suppress(psutil.Error):
        pids += [c.pid for c in psutil.Process(pid).children(recursive=True)]
    return {p: mb for p in pids if (mb := peak_rss_mb(p)) is not None}


def peak_rss_mb(pid: int) -> float | None:
    """The kernel's high-water mark of resident memory (VmHWM): the true peak, not a sample."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


@dataclass(frozen=True)
class ExitUsage:
    cpu_s: float
    peak_rss_mb: float
    exit_code: int


def reap(pid: int) -> ExitUsage:
    """Wait for a child and take its rusage: total CPU and peak RSS, shutdown included."""
    _, status, usage = os.wait4(pid, 0)
    return ExitUsage(
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        exit_code=os.waitstatus_to_exitcode(status),
    )


def postgres_cpu_seconds(postmaster_pid: int) -> float:
    """CPU of the postmaster and its live children (backends, walwriter, checkpointer…)."""
    with contextlib.suppress(psutil.Error):
        main = psutil.Process(postmaster_pid)
        return cpu_seconds(postmaster_pid) + sum(cpu_seconds(c.pid) for c in main.children())
    return 0.0


@dataclass(kw_only=True)
class Samples:
    """CPU seconds of every process on the machine that matters, at one moment."""

    at: float
    worker: float
    llm: float
    postgres: float
    broker: float
    bench: float

    @classmethod
    def take(cls, worker: int, llm: int, postmaster: int, broker: int) -> Samples:
        return cls(
            at=time.monotonic(),
            worker=tree_cpu_seconds(worker),
            llm=cpu_seconds(llm),
            postgres=postgres_cpu_seconds(postmaster),
            broker=cpu_seconds(broker),
            bench=time.process_time(),
        )


@dataclass(kw_only=True)
class Run:
    """One scenario's raw measurements; report.summarize turns them into figures."""

    spawned: float  # monotonic times
    ready: Samples
    end: Samples
    complete: bool  # every turn announced within the cap
    sent: dict[str, float]  # turn event_id -> publish time
    seen: dict[str, float]  # turn event_id -> first update naming it
    events: int
    worker_total_cpu_s: float  # from the exit rusage: startup and shutdown included
    worker_peak_rss_mb: float  # the largest process's, with `--workers N`
    worker_rss_by_process: list[float]  # MB, every process of the worker, largest first
    exit_code: int
    warm_up: bool
    # Filled in after the worker exited (PostgreSQL reports a backend's counters at its exit).
    commits: int = 0
    statements: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)  # the fake LLM's request log
    stored_turns: int = 0


# --- PostgreSQL ----------------------------------------------------------------------------


async def commits(admin: asyncpg.Connection, database: str) -> int:
    """Committed transactions of one database (backends report at exit or when idle)."""
    await admin.execute("SELECT pg_stat_clear_snapshot()")
    value = await admin.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", database
    )
    return int(value or 0)


async def statements(admin: asyncpg.Connection, database: str) -> int:
    """Statements executed in one database (pg_stat_statements; BEGIN and COMMIT included)."""
    value = await admin.fetchval(
        "SELECT sum(calls) FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)",
        database,
    )
    return int(value or 0)


async def statement_calls(admin: asyncpg.Connection, database: str) -> list[tuple[int, str]]:
    """(calls, statement) of one database, most called first: where the round trips go."""
    rows = await admin.fetch(
        "SELECT calls, query FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) ORDER BY calls DESC",
        database,
    )
    return [(int(r["calls"]), " ".join(str(r["query"]).split())) for r in rows]


async def backends(admin: asyncpg.Connection, database: str) -> int:
    value = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        database,
    )
    return int(value or 0)


async def wait_for_no_backends(admin: asyncpg.Connection, database: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    # Polling another server's state: there is no event to wait on.
    while await backends(admin, database) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # poll
