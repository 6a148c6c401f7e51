"""The outbox relay against a real PostgreSQL; the broker side is a recording publisher, or the
real broker through the worker's own producer."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas import ConversationKey, QualificationState, update_event_id
from schemas.events import ExtractionInfo, QualificationUpdated
from tests.harness import TopicReader, Topics
from tests.waiting import eventually
from worker.app import kafka_publisher
from worker.store.outbox import (
    BrokerUnavailable,
    Message,
    NotPublished,
    OutboxRelay,
    OutboxRepository,
)


def event(
    key: ConversationKey, version: int, qualification: QualificationState | None = None
) -> QualificationUpdated:
    return QualificationUpdated(
        event_id=update_event_id(key, version),
        tenant_id=key.tenant_id,
        account_id=key.account_id,
        contact_id=key.contact_id,
        version=version,
        deal_stage="prospecting",
        previous_stage="prospecting",
        qualification=qualification or QualificationState(),
        changed_fields=[],
        interaction_count=version,
        confidence_score=0.5,
        extraction=ExtractionInfo(status="ok", model="m", prompt_version="p", turns=1),
        turn_event_ids=[],
        occurred_at=datetime.now(UTC),
    )


class RecordingBroker:
    """Stands in for Kafka: keeps what was published, in order, with a little jitter."""

    def __init__(self) -> None:
        self.published: list[Message] = []

    async def publish_many(self, messages: Sequence[Message]) -> list[NotPublished | None]:
        await asyncio.sleep(random.random() / 100)  # poll: lets the other relays interleave
        self.published.extend(messages)
        return [None] * len(messages)


async def test_concurrent_relays_publish_each_version_once_in_order(
    pool: asyncpg.Pool, database_url: str
) -> None:
    keys = [ConversationKey(uuid.uuid4(), f"acct-{i}", "c") for i in range(5)]
    for version in range(1, 41):
        for key in keys:
            async with pool.acquire() as conn, conn.transaction():
                await OutboxRepository(conn).insert_outbox("updates", event(key, version))
    broker = RecordingBroker()
    relays = [
        OutboxRelay(
            pool=pool, database_url=database_url, publish_many=broker.publish_many, batch_size=7
        )
        for _ in range(4)
    ]

    async def drain(relay: OutboxRelay) -> None:
        while await relay.publish_pending():
            pass

    await asyncio.gather(*(drain(relay) for relay in relays))

    versions: dict[bytes, list[int]] = defaultdict(list)
    for topic, key, value, headers in broker.published:
        payload = orjson.loads(value)
        assert topic == "updates" and headers == [("event_id", payload["event_id"].encode())]
        versions[key].append(payload["version"])
    assert {k.decode() for k in versions} == {str(k) for k in keys}
    assert all(v == list(range(1, 41)) for v in versions.values())
    assert await pool.fetchval("SELECT count(*) FROM tenant.outbox WHERE published_at IS NULL") == 0


async def test_a_failed_publish_leaves_rows_for_the_next_round(
    pool: asyncpg.Pool, database_url: str
) -> None:
    key = ConversationKey(uuid.uuid4(), "acme", "jane")
    async with pool.acquire() as conn, conn.transaction():
        await OutboxRepository(conn).insert_outbox("updates", event(key, 1))

    attempted: list[Sequence[Message]] = []

    async def broker_down(messages: Sequence[Message]) -> None:
        attempted.append(messages)
        raise ConnectionError("broker unreachable")

    failing = OutboxRelay(pool=pool, database_url=database_url, publish_many=broker_down)
    with pytest.raises(ConnectionError):
        await failing.publish_pending()
    assert [len(messages) for messages in attempted] == [1], "the relay tried to publish the row"
    broker = RecordingBroker()
    working = OutboxRelay(pool=pool, database_url=database_url, publish_many=broker.publish_many)
    assert await working.publish_pending() == 1
    assert len(broker.published) == 1


async def insert(pool: asyncpg.Pool, topic: str, *events: QualificationUpdated) -> None:
    for one in events:
        async with pool.acquire() as conn, conn.transaction():
            await OutboxRepository(conn).insert_outbox(topic, one)


def oversized() -> QualificationState:
    """A state far over 1 MiB serialized (what no bounded merge makes, but an old row may hold)."""
    return QualificationState(key_insights=[f"{n:05d} " + "x" * 1000 for n in range(1200)])


async def test_a_row_the_broker_refuses_is_set_aside_and_the_rest_of_the_claim_published(
    pool: asyncpg.Pool, database_url: str, kafka_bootstrap_servers: str, topics: Topics
) -> None:
    keys = [ConversationKey(uuid.uuid4(), f"acct-{i}", "c") for i in range(4)]
    huge = event(keys[0], 1, oversized())
    assert len(huge.model_dump_json()) > 1024 * 1024
    # The unpublishable row comes first in id order, ahead of every good one.
    await insert(pool, topics.updates, huge, *(event(key, 2) for key in keys))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        relay = OutboxRelay(
            pool=pool,
            database_url=database_url,
            publish_many=kafka_publisher(producer),
            retry_delay_s=3600,  # set aside for the whole test
        )
        async with TopicReader(
            bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
        ) as updates:
            assert await relay.publish_pending() == 5, "one claim took all five rows"
            await eventually(updates.count, lambda n: n >= 4, within_s=30, what="four events")
            assert await relay.publish_pending() == 0, "the refused row is not claimed again"
            published = sorted((p["account_id"], p["version"]) for p in updates.json_values())
    finally:
        await producer.stop()

    assert published == [(key.account_id, 2) for key in keys]
    [refused] = await pool.fetch(
        "SELECT event_id, attempts, last_error FROM tenant.outbox WHERE published_at IS NULL"
    )
    assert refused["event_id"] == huge.event_id
    assert (refused["attempts"], refused["last_error"]) == (1, "MessageSizeTooLargeError")


async def test_a_row_refused_while_others_get_through_waits_behind_them(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """Even an error that looks transient is the row's own when the broker took the others."""
    keys = [ConversationKey(uuid.uuid4(), f"acct-{i}", "c") for i in range(3)]
    await insert(pool, "updates", *(event(key, 1) for key in keys))
    unlucky = str(update_event_id(keys[1], 1)).encode()
    attempts: list[int] = []

    async def one_partition_down(messages: Sequence[Message]) -> list[NotPublished | None]:
        attempts.append(len(messages))
        return [
            NotPublished(error="RequestTimedOutError", about_the_message=False)
            if headers == [("event_id", unlucky)]
            else None
            for _, _, _, headers in messages
        ]

    relay = OutboxRelay(
        pool=pool, database_url=database_url, publish_many=one_partition_down, retry_delay_s=3600
    )
    assert await relay.publish_pending() == 3
    assert await relay.publish_pending() == 0
    assert attempts == [3]
    rows = await pool.fetch(
        "SELECT payload->>'account_id' AS account_id, published_at IS NOT NULL AS published,"
        " attempts FROM tenant.outbox ORDER BY id"
    )
    assert [(r["account_id"], r["published"], r["attempts"]) for r in rows] == [
        ("acct-0", True, 0),
        ("acct-1", False, 1),
        ("acct-2", True, 0),
    ]


async def test_when_the_broker_takes_nothing_the_claim_is_tried_again_whole(
    pool: asyncpg.Pool, database_url: str
) -> None:
    key = ConversationKey(uuid.uuid4(), "acme", "jane")
    await insert(pool, "updates", event(key, 1), event(key, 2))

    async def broker_unreachable(messages: Sequence[Message]) -> list[NotPublished | None]:
        return [NotPublished(error="KafkaTimeoutError", about_the_message=False) for _ in messages]

    failing = OutboxRelay(pool=pool, database_url=database_url, publish_many=broker_unreachable)
    with pytest.raises(BrokerUnavailable):
        await failing.publish_pending()
    assert await pool.fetchval("SELECT max(attempts) FROM tenant.outbox") == 0, "nothing set aside"
    broker = RecordingBroker()
    working = OutboxRelay(pool=pool, database_url=database_url, publish_many=broker.publish_many)
    assert await working.publish_pending() == 2
