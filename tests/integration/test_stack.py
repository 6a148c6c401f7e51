"""The embedded stack (devtools/stack/) against its real servers: PostgreSQL and Tansu.

These always use the embedded servers, whatever DATABASE_URL/KAFKA_BOOTSTRAP_SERVERS say: the
stack itself is what is under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from devtools.stack import (
    BrokerProcess,
    PostgresProcess,
    create_topics,
    running_broker,
    stack_down,
    stack_status,
    stack_up,
    start_broker,
    start_postgres,
)

# Tansu holds a new group's join for about half the session timeout; keep it short for tests.
GROUP_TIMEOUTS = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300}


async def select_one(url: str) -> int:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        value: int = await conn.fetchval("select 1")
        return value
    finally:
        await conn.close()


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


async def topic_names(bootstrap_servers: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PostgresProcess]:
    server = start_postgres(tmp_path / "postgres", durable=False)
    yield server
    server.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    server = start_broker(tmp_path / "broker")
    yield server
    server.stop()


@pytest.fixture
def stack_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "stack"
    yield root
    stack_down(root)


async def test_postgres_serves_stops_and_restarts_on_the_same_port(
    postgres: PostgresProcess,
) -> None:
    assert await select_one(postgres.url) == 1
    port, first_pid = postgres.port, postgres.pid

    assert postgres.stop() is True
    with pytest.raises(OSError):
        await asyncpg.connect(postgres.url, timeout=5)
    assert postgres.stop() is False  # already stopped

    postgres.start()
    assert postgres.port == port
    assert postgres.pid != first_pid
    assert await select_one(postgres.url) == 1


async def test_postgres_has_room_for_many_connections(postgres: PostgresProcess) -> None:
    conn = await asyncpg.connect(postgres.url)
    try:
        assert int(await conn.fetchval("show max_connections")) >= 200
        assert await conn.fetchval("show fsync") == "off"  # durable=False
    finally:
        await conn.close()


def test_postgres_failure_to_start_names_the_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=r"postgres\.log"):
            start_postgres(tmp_path / "postgres", port=port, durable=False)


async def test_broker_serves_keyed_messages_to_a_group_that_commits(
    broker: BrokerProcess,
) -> None:
    topic = f"stack-test-{uuid.uuid4().hex[:8]}"
    await create_topics(broker.bootstrap_servers, [topic], partitions=4)
    await create_topics(broker.bootstrap_servers, [topic], partitions=4)  # idempotent

    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, key=b"conversation-1", value=b"hello")
    finally:
        await producer.stop()

    group = f"group-{uuid.uuid4().hex[:8]}"
    tp = TopicPartition(topic, sent.partition)
    async with consumer_in(broker, group, topic) as consumer:
        assert consumer.partitions_for_topic(topic) == {0, 1, 2, 3}
        message = await asyncio.wait_for(consumer.getone(), timeout=30)
        assert (message.key, message.value) == (b"conversation-1", b"hello")
        await consumer.commit({tp: message.offset + 1})
        assert await consumer.committed(tp) == message.offset + 1

    # The commit lives in the broker, not in the consumer that made it. (Not subscribing: a
    # second join would wait for the group to settle.)
    async with consumer_in(broker, group) as successor:
        assert await successor.committed(tp) == sent.offset + 1


@contextlib.asynccontextmanager
async def consumer_in(
    broker: BrokerProcess, group: str, *topics: str
) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **GROUP_TIMEOUTS,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def test_stack_up_reuses_running_servers_and_stack_down_stops_them(
    stack_root: Path,
) -> None:
    migrated: list[str] = []

    async def migrate(url: str) -> None:
        migrated.append(url)

    first = await asyncio.to_thread(
        stack_up,
        stack_root,
        topics=["turns", "updates"],
        partitions=2,
        durable=False,
        migrate=migrate,
    )
    second = await asyncio.to_thread(
        stack_up, stack_root, topics=["turns", "updates"], partitions=2, durable=False
    )

    assert second == first
    assert migrated == [first.database_url]
    assert await select_one(first.database_url) == 1
    assert {"turns", "updates"} <= await topic_names(first.kafka_bootstrap_servers)
    assert json.loads((stack_root / "stack.json").read_text())["kafka_port"] == first.kafka_port
    assert (stack_root / "env.sh").read_text() == first.export_lines()
    status = stack_status(stack_root)
    assert status is not None and status.all_running and status.info == first

    assert stack_down(stack_root) is True
    assert refuses_connections(first.postgres_port)
    assert refuses_connections(first.kafka_port)
    assert stack_status(stack_root) is None
    assert stack_down(stack_root) is False


async def test_stack_up_restarts_a_dead_broker_and_recreates_its_topics(
    stack_root: Path,
) -> None:
    first = await asyncio.to_thread(stack_up, stack_root, topics=["turns"], durable=False)
    dead = running_broker(stack_root / "broker")
    assert dead is not None and dead.stop()
    status = stack_status(stack_root)
    assert status is not None and status.postgres_running and not status.broker_running

    again = await asyncio.to_thread(stack_up, stack_root, topics=["turns"], durable=False)

    assert again.postgres_pid == first.postgres_pid
    assert again.broker_pid != first.broker_pid
    assert again.kafka_port == first.kafka_port  # the exported env.sh stays valid
    assert "turns" in await topic_names(again.kafka_bootstrap_servers)
