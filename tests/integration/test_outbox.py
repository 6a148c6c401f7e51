"""The outbox relay against a real PostgreSQL; the broker side is a recording publisher."""

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

from schemas import ConversationKey, QualificationState, update_event_id
from schemas.events import ExtractionInfo, QualificationUpdated
from worker.store.outbox import Message, OutboxRelay, OutboxRepository


def event(key: ConversationKey, version: int) -> QualificationUpdated:
    return QualificationUpdated(
        event_id=update_event_id(key, version),
        tenant_id=key.tenant_id,
        account_id=key.account_id,
        contact_id=key.contact_id,
        version=version,
        deal_stage="prospecting",
        previous_stage="prospecting",
        qualification=QualificationState(),
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

    async def publish_many(self, messages: Sequence[Message]) -> None:
        await asyncio.sleep(random.random() / 100)  # poll: lets the other relays interleave
        self.published.extend(messages)


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
