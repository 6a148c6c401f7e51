"""Drive the real worker: unique topics per test, `python -m worker run` as a subprocess,
turns produced through Kafka, `qualification.updated` read back by a real consumer."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devtools.stack import create_topics
from worker.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
BASE_TIME = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class Topics:
    turns: str
    updates: str
    dlq: str
    overrides: str

    @classmethod
    def unique(cls) -> Topics:
        suffix = uuid.uuid4().hex[:10]
        return cls(
            turns=f"turns-{suffix}",
            updates=f"updates-{suffix}",
            dlq=f"dlq-{suffix}",
            overrides=f"overrides-{suffix}",
        )

    def settings(self) -> Settings:
        return Settings(
            turn_topic=self.turns,
            override_topic=self.overrides,
            update_topic=self.updates,
            dlq_topic=self.dlq,
        )

    async def create(self, bootstrap_servers: str, *, partitions: int = 4) -> None:
        """Every topic the worker uses (`Settings.topics`). Same partition count for turns and
        overrides: a conversation's key lands on the same partition number of both, as in
        production."""
        await create_topics(bootstrap_servers, self.settings().topics, partitions=partitions)


def worker_env(
    *, database_url: str, bootstrap_servers: str, topics: Topics, llm_base_url: str, **extra: str
) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "TURN_TOPIC": topics.turns,
        "UPDATE_TOPIC": topics.updates,
        "DLQ_TOPIC": topics.dlq,
        "OVERRIDE_TOPIC": topics.overrides,
        "CONSUMER_GROUP": f"group-{topics.turns}",
        "LLM_MODEL": "openai/fake-model",
        "LLM_API_BASE": llm_base_url,
        "LLM_MODE": "tools",  # some tests script tool-call replies (LLM_MODE auto: JSON here)
        "LLM_API_KEY": "sk-test-not-a-real-key",
        "LLM_TIMEOUT_S": "2",
        "LLM_TRANSPORT_ATTEMPTS": "2",
        "LLM_RETRY_BUDGET_S": "4",
        "REDELIVERY_BACKOFF_S": "0.2",
        "OUTBOX_POLL_INTERVAL_S": "0.5",
        "BATCH_TIMEOUT_MS": "100",
        "LOG_FORMAT": "json",
        "KAFKA_SESSION_TIMEOUT_MS": "3000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "HTTP_PORT": "0",  # tests that use the endpoints pass a free port
        # The turns' times are fixed (BASE_TIME), so they age: a worker would stall their deals
        # for inactivity. Tests of that turn the sweeper on.
        "STALL_SWEEP_INTERVAL_S": "0",
    }
    env.update(extra)
    return env


@dataclass(kw_only=True)
class WorkerProcess:
    """`python -m worker run [args]` with its output in a log file (read it on failure)."""

    env: Mapping[str, str]
    log_path: Path
    args: Sequence[str] = ()
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker", "run", *self.args],
            cwd=REPO_ROOT,
            env=dict(self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def stop(self, sig: int = signal.SIGTERM, within_s: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=within_s)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def turn(
    tenant_id: uuid.UUID,
    account_id: str,
    contact_id: str,
    sequence: int,
    text: str,
    *,
    speaker: str = "prospect",
    channel: str = "chat",
    **overrides: Any,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event_id": str(uuid.uuid5(tenant_id, f"{account_id}:{contact_id}:{sequence}")),
        "tenant_id": str(tenant_id),
        "account_id": account_id,
        "contact_id": contact_id,
        "contact_email": f"{contact_id}@example.com",
        "contact_name": f"Contact {contact_id}",
        "channel": channel,
        "speaker": speaker,
        "text": text,
        "occurred_at": (BASE_TIME + timedelta(minutes=sequence)).isoformat(),
        "sequence": sequence,
    }
    payload.update(overrides)
    return payload


def key_of(payload: Mapping[str, Any]) -> bytes:
    return f"{payload['tenant_id']}:{payload['account_id']}:{payload['contact_id']}".encode()


async def produce(
    bootstrap_servers: str,
    topic: str,
    records: Iterable[dict[str, Any] | tuple[bytes | None, bytes]],
) -> int:
    """Publish payloads (dicts, keyed by conversation) or raw (key, value) pairs."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        futures = []
        for record in records:
            key, value = (
                (key_of(record), json.dumps(record).encode())
                if isinstance(record, dict)
                else record
            )
            futures.append(await producer.send(topic, value=value, key=key))
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


@dataclass(kw_only=True)
class TopicReader:
    """Reads a topic from the beginning in the background; `records` grows as they arrive."""

    bootstrap_servers: str
    topic: str
    records: list[tuple[bytes | None, bytes, dict[str, bytes]]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TopicReader:
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=f"reader-{uuid.uuid4().hex[:8]}",
        )
        await consumer.start()
        try:
            async for message in consumer:
                headers = {k: v for k, v in (message.headers or ())}
                self.records.append((message.key, message.value, headers))
        finally:
            await consumer.stop()

    def json_values(self) -> list[dict[str, Any]]:
        return [json.loads(value) for _, value, _ in self.records]

    async def count(self) -> int:
        return len(self.records)


async def committed_to_end(bootstrap_servers: str, group: str, topic: str) -> bool:
    """True once the group's committed offsets reach the end of every partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            if (await consumer.committed(tp) or 0) < ends[tp]:
                return False
        return True
    finally:
        await consumer.stop()


async def fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        return rows
    finally:
        await conn.close()


async def stored_turns(database_url: str) -> int:
    rows = await fetch(database_url, "SELECT count(*) AS n FROM tenant.conversation_turns")
    return int(rows[0]["n"])


async def applied_turns(database_url: str) -> int:
    rows = await fetch(
        database_url,
        "SELECT coalesce(sum(interaction_count), 0) AS n FROM tenant.conversation_states",
    )
    return int(rows[0]["n"])
