"""A conversation that quotes everything: 2,000 turns, each quoted as evidence of every
dimension, as a key insight, a decision criterion and a question. Unbounded, its state passed
1 MiB after a few hundred turns and every later event could never be published; bounded, every
event fits and the relay publishes them all through the real broker."""

from __future__ import annotations

import uuid

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from schemas import ConversationTurn
from schemas.dimensions import DIMENSIONS, ValueKind
from tests.fakes.llm_server import EMPTY_EXTRACTION, FakeLLMServer, JsonObject
from tests.harness import Topics, turn
from tests.reliability.support import prompt_turns
from worker.app import kafka_publisher
from worker.bootstrap import build_service
from worker.settings import Settings
from worker.store.database import Database
from worker.store.outbox import OutboxRelay

TURNS = 2000
PER_BATCH = 100  # 20 extractions, 20 versions
MIB = 1024 * 1024


def turn_text(n: int) -> str:
    """~400 characters with quotes and backslashes, which JSON escapes."""
    return f"Turn {n}:" + ' the CFO said "we need SSO \\ SCIM before Q3" and agreed.' * 7


def quote_everything(request: JsonObject) -> JsonObject:
    texts = [text for _, text in prompt_turns(request)]
    if not texts:
        return EMPTY_EXTRACTION
    groups: dict[str, JsonObject] = {"bant": {}, "meddic": {}}
    for dimension in DIMENSIONS:
        fields = groups[dimension.group.value]
        if dimension.identified_field:
            fields[dimension.identified_field] = True
        fields[dimension.confidence_field] = 0.7
        fields[dimension.evidence_field] = texts
        single = (*dimension.of_kind(ValueKind.TEXT), *dimension.of_kind(ValueKind.CONTACT))
        fields |= dict.fromkeys(single, texts[-1][:150])
        fields |= {f: [t[:150] for t in texts] for f in dimension.of_kind(ValueKind.LIST)}
    return {
        **EMPTY_EXTRACTION,
        **groups,
        "overall_confidence": 0.7,
        "key_insights": texts,
        "recommended_next_questions": texts,
    }


async def test_a_conversation_of_2000_turns_all_quoted_publishes_every_event(
    database: Database,
    pool: asyncpg.Pool,
    database_url: str,
    kafka_bootstrap_servers: str,
    topics: Topics,
) -> None:
    tenant = uuid.uuid4()
    turns = [
        ConversationTurn.model_validate(turn(tenant, "acme", "everything", n, turn_text(n)))
        for n in range(TURNS)
    ]
    async with FakeLLMServer(reply_builder=quote_everything) as llm:
        settings = Settings(
            llm_model="openai/fake-model",
            llm_api_base=llm.base_url,
            llm_api_key="test-key",
            llm_timeout_s=10,
            llm_max_prompt_tokens=100_000,  # a batch's turns in one prompt: one version each
            update_topic=topics.updates,
            stage_criteria="off",
        )
        service = build_service(settings, database)
        for start in range(0, TURNS, PER_BATCH):
            outcome = await service.process_batch(turns[start : start + PER_BATCH])
            assert outcome.applied == PER_BATCH
    rows = await pool.fetch("SELECT payload FROM tenant.outbox ORDER BY id")
    sizes = [len(orjson.dumps(row["payload"])) for row in rows]
    last = orjson.loads(orjson.dumps(rows[-1]["payload"]))
    assert len(sizes) == TURNS // PER_BATCH
    assert last["extraction"]["status"] == "ok" and last["interaction_count"] == TURNS
    assert len(last["qualification"]["bant"]["need_evidence"]) == 20, "the newest 20 quotes"
    assert last["qualification"]["bant"]["need_evidence"][-1] == turn_text(TURNS - 1)
    print(f"update events: largest {max(sizes)} bytes, last {sizes[-1]} bytes")
    assert max(sizes) < MIB

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        relay = OutboxRelay(
            pool=pool, database_url=database_url, publish_many=kafka_publisher(producer)
        )
        while await relay.publish_pending():
            pass
    finally:
        await producer.stop()
    stuck = await pool.fetch(
        "SELECT id, last_error FROM tenant.outbox WHERE published_at IS NULL OR attempts > 0"
    )
    assert stuck == []
