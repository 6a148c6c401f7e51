"""The end-state checkers can fail: each broken promise, planted by hand, is reported.

Without this, a checker that always returns [] would let every reliability test pass.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from schemas import ConversationKey, ConversationTurn, QualificationOverride
from tests.harness import TopicReader, Topics, fetch, turn
from tests.reliability.support import (
    OVERRIDE_ACTIONS,
    JsonObject,
    Sent,
    override_of,
    partial_state_problems,
    produce_tracked,
    unstored_below_committed,
    verify_end_state,
)
from tests.state_store import RULES
from worker.bootstrap import build_service
from worker.store.database import Database

TENANT = uuid.UUID("c4ec4e00-0000-4000-8000-00000000000c")
TEXTS = ["We need faster reporting.", "Our budget is $40k.", "The CFO signs off in June."]


async def test_each_broken_promise_is_reported(pool: asyncpg.Pool, database_url: str) -> None:
    sent = await store_one_version_per_turn(pool, [f"c{c}" for c in range(6)])
    updates = await read_back(database_url)
    assert await verify_end_state(database_url, sent, updates) == []
    assert await partial_state_problems(database_url) == []

    conn = await asyncpg.connect(database_url)  # the owner: row-level security does not apply
    try:
        await conn.execute(
            "UPDATE tenant.conversation_states SET interaction_count = interaction_count + 1"
            " WHERE contact_id = 'c0'"
        )
        await conn.execute(
            "UPDATE tenant.conversation_states SET qualification_data = jsonb_set("
            "qualification_data, '{bant,need_evidence}', '[\"twice\", \"twice\"]')"
            " WHERE contact_id = 'c1'"
        )
        await conn.execute(
            "DELETE FROM tenant.outbox WHERE payload->>'contact_id' = 'c2'"
            " AND payload->>'version' = '2'"
        )
    finally:
        await conn.close()
    updates.records = [r for r in updates.records if not is_event(r, "c3", 1)]
    updates.records += [altered(r) for r in updates.records if is_event(r, "c4", 1)]
    lost = turn(TENANT, "acme", "c5", 9, "A turn that was never stored.")

    problems = "\n".join(await verify_end_state(database_url, [*sent, lost], updates))
    assert "c0: interaction_count 4 != 3 sent" in problems
    assert "c1: duplicated quotes in bant.need_evidence" in problems
    assert "c2: outbox versions [1, 3] != 1..3" in problems
    assert "c3: update events missing versions [1]" in problems
    assert "was published with different payloads" in problems
    assert "c5: interaction_count 3 != 4 sent" in problems and "1 missing" in problems
    partial = "\n".join(await partial_state_problems(database_url))
    assert "c0: count 4 but 3 turns" in partial and "c2: version 3 but events 2" in partial


async def test_each_broken_end_state_promise_is_reported_by_name(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """The checks the test above leaves silent: wrong evidence, a non-deterministic event id,
    a turn in two versions, a last event that disagrees with the state, a missing state."""
    contacts = ["quotes", "event-id", "twice", "last-count", "no-state"]
    sent = await store_one_version_per_turn(pool, contacts)
    keys = {contact: ConversationKey(TENANT, "acme", contact) for contact in contacts}
    # QuotingLLM's promise, met by the rules here: the prospect's need sentence, once.
    quotes = {key: {TEXTS[0]} for key in keys.values()}
    updates = await read_back(database_url)
    assert await verify_end_state(database_url, sent, updates, expected_quotes=quotes) == []
    assert await partial_state_problems(database_url) == []

    first_turn = next(t["event_id"] for t in sent if t["contact_id"] == "twice")
    conn = await asyncpg.connect(database_url)  # the owner: row-level security does not apply
    try:
        await conn.execute(
            "UPDATE tenant.conversation_states SET qualification_data = jsonb_set("
            "qualification_data, '{bant,need_evidence}', '[\"Words nobody said.\"]')"
            " WHERE contact_id = 'quotes'"
        )
        await conn.execute(
            "UPDATE tenant.outbox SET payload = jsonb_set(payload, '{turn_event_ids}',"
            " payload->'turn_event_ids' || to_jsonb($1::text))"
            " WHERE payload->>'contact_id' = 'twice' AND payload->>'version' = '2'",
            first_turn,
        )
        await conn.execute("DELETE FROM tenant.conversation_states WHERE contact_id = 'no-state'")
    finally:
        await conn.close()
    updates = await read_back(database_url)  # with "twice" v2 naming v1's turn again
    updates.records = [
        with_event_id(r, uuid.uuid4()) if is_event(r, "event-id", 1) else r for r in updates.records
    ]
    updates.records = [altered(r) if is_event(r, "last-count", 3) else r for r in updates.records]

    problems = "\n".join(
        await verify_end_state(database_url, sent, updates, expected_quotes=quotes)
    )
    assert f"{keys['quotes']}: need_evidence has 1 quotes missing and 1 unexpected" in problems
    assert f"is not the deterministic id of {keys['event-id']} v1" in problems
    assert f"{keys['twice']}: turns in events: 0 never applied, 1 applied in more" in problems
    assert f"{keys['last-count']}: the last event's interaction_count differs" in problems
    assert f"{keys['no-state']}: no state for 3 turns sent" in problems
    partial = "\n".join(await partial_state_problems(database_url))
    assert f"{keys['twice']}: the versions do not name each stored turn exactly once" in partial
    assert f"{keys['no-state']}: events without a state" in partial


async def test_a_turn_committed_past_but_not_stored_is_reported(
    pool: asyncpg.Pool, database_url: str, kafka_bootstrap_servers: str, topics: Topics
) -> None:
    """`unstored_below_committed`, the check made right after every kill: silent while the
    group's offsets cover only stored turns, and it names a turn the offsets skipped."""
    group = f"group-{topics.turns}"
    payloads = [turn(TENANT, "acme", "kafka", s, t) for s, t in enumerate(TEXTS)]
    sent = await produce_tracked(kafka_bootstrap_servers, topics.turns, payloads)
    stored, unstored = sent[:2], sent[2]
    service = build_service(RULES, Database(pool))
    await service.process_batch([ConversationTurn.model_validate(s.payload) for s in stored])

    async def lost() -> list[Sent]:
        return await unstored_below_committed(
            database_url, kafka_bootstrap_servers, group, topics.turns, sent
        )

    await commit_offsets(kafka_bootstrap_servers, group, topics.turns, stored)
    assert await lost() == []
    await commit_offsets(kafka_bootstrap_servers, group, topics.turns, [unstored])
    assert await lost() == [unstored]


async def test_each_broken_override_promise_is_reported(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """The override checks (crash test with overrides): an override never applied, applied
    by a version whose event is not its own (turns source, other actor), an override version
    no override row names, an event that does not show the override's effect."""
    contacts = ["never", "actor", "named-turns", "extra", "budget", "stage"]
    sent = await store_one_version_per_turn(pool, contacts)
    keys = {contact: ConversationKey(TENANT, "acme", contact) for contact in contacts}
    overrides = await apply_every_override_action(pool, list(keys.values()))
    updates = await read_back(database_url)
    assert await verify_end_state(database_url, sent, updates, overrides=overrides) == []
    assert await partial_state_problems(database_url) == []

    conn = await asyncpg.connect(database_url)  # the owner: row-level security does not apply
    try:
        await conn.execute(
            "DELETE FROM tenant.overrides WHERE contact_id = 'never' AND version = 4"
        )
        await alter_event(conn, "actor", 5, "jsonb_set(payload, '{actor,id}', '\"mallory\"')")
        await conn.execute(
            "UPDATE tenant.overrides SET version = 1"
            " WHERE contact_id = 'named-turns' AND version = 4"
        )
        await alter_event(conn, "extra", 2, "jsonb_set(payload, '{source}', '\"override\"')")
        await alter_event(
            conn,
            "budget",
            5,
            "jsonb_set(payload, '{qualification,bant,budget_range}', '\"$50k\"')",
        )
        await alter_event(conn, "stage", 6, "jsonb_set(payload, '{deal_stage}', '\"discovery\"')")
    finally:
        await conn.close()
    updates = await read_back(database_url)

    problems = "\n".join(await verify_end_state(database_url, sent, updates, overrides=overrides))
    never = next(o["event_id"] for o in overrides if o["contact_id"] == "never")  # v4's
    assert f"{keys['never']}: override {never} applied 0 times" in problems
    assert f"{keys['actor']}: override" in problems and "has actor" in problems
    assert f"{keys['extra']}: 4 override version(s) for 3 override(s) sent" in problems
    assert "budget_range is '$50k', set '$90k'" in problems
    assert "the deal is in discovery, moved to qualification" in problems
    partial = "\n".join(await partial_state_problems(database_url))
    assert f"{keys['never']}: 3 override version(s) for 2 applied override(s)" in partial
    assert f"{keys['actor']}: override" in partial and "'mallory'" in partial
    assert f"{keys['named-turns']}: override" in partial and "source 'turns'" in partial
    assert f"{keys['extra']}: 4 override version(s) for 3 applied override(s)" in partial


async def test_an_override_committed_past_but_not_applied_is_reported(
    pool: asyncpg.Pool, database_url: str, kafka_bootstrap_servers: str, topics: Topics
) -> None:
    """`unstored_below_committed` over the overrides topic, made right after every kill."""
    group = f"group-{topics.turns}"
    [payload] = [turn(TENANT, "acme", "kafka", 0, TEXTS[0])]
    await build_service(RULES, Database(pool)).process_batch(
        [ConversationTurn.model_validate(payload)]
    )
    key = ConversationKey(TENANT, "acme", "kafka")
    payloads = [override_of(key, n, after_turn=0) for n in range(len(OVERRIDE_ACTIONS))]
    sent = await produce_tracked(kafka_bootstrap_servers, topics.overrides, payloads)
    applied, unapplied = sent[:-1], sent[-1]
    service = build_service(RULES, Database(pool))
    for record in applied:
        await service.apply_override(key, QualificationOverride.model_validate(record.payload))

    async def lost() -> list[Sent]:
        return await unstored_below_committed(
            database_url,
            kafka_bootstrap_servers,
            group,
            topics.overrides,
            sent,
            stored_in=("tenant.overrides",),
        )

    await commit_offsets(kafka_bootstrap_servers, group, topics.overrides, applied)
    assert await lost() == []
    await commit_offsets(kafka_bootstrap_servers, group, topics.overrides, [unapplied])
    assert await lost() == [unapplied]


async def apply_every_override_action(
    pool: asyncpg.Pool, keys: list[ConversationKey]
) -> list[JsonObject]:
    """OVERRIDE_ACTIONS applied to each conversation in order (versions 4, 5, 6 after the
    three turns' versions)."""
    service = build_service(RULES, Database(pool))
    overrides = []
    for key in keys:
        for number in range(len(OVERRIDE_ACTIONS)):
            payload = override_of(key, number, after_turn=len(TEXTS))
            outcome = await service.apply_override(
                key, QualificationOverride.model_validate(payload)
            )
            assert outcome.overrides_applied == 1
            overrides.append(payload)
    return overrides


async def alter_event(conn: asyncpg.Connection, contact: str, version: int, change: str) -> None:
    """Rewrite one outbox event's payload with the SQL expression `change`."""
    await conn.execute(
        f"UPDATE tenant.outbox SET payload = {change}"
        " WHERE payload->>'contact_id' = $1 AND payload->>'version' = $2",
        contact,
        str(version),
    )


async def store_one_version_per_turn(pool: asyncpg.Pool, contacts: list[str]) -> list[JsonObject]:
    """TEXTS as the turns of each contact's conversation, one version per turn."""
    service = build_service(RULES, Database(pool))
    sent = [
        turn(TENANT, "acme", contact, s, t) for contact in contacts for s, t in enumerate(TEXTS)
    ]
    for payload in sent:
        await service.process_batch([ConversationTurn.model_validate(payload)])
    return sent


async def commit_offsets(
    bootstrap_servers: str, group: str, topic: str, records: list[Sent]
) -> None:
    """Commit `group` past each of `records`, as a worker does after its batch."""
    offsets = {
        TopicPartition(topic, s.partition): OffsetAndMetadata(s.offset + 1, "") for s in records
    }
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def read_back(database_url: str) -> TopicReader:
    """What a consumer of `qualification.updated` would have read: the outbox, once each."""
    reader = TopicReader(bootstrap_servers="unused", topic="unused")
    for row in await fetch(database_url, "SELECT key, payload FROM tenant.outbox ORDER BY id"):
        payload = row["payload"] if isinstance(row["payload"], dict) else json.loads(row["payload"])
        reader.records.append((row["key"].encode(), json.dumps(payload).encode(), {}))
    return reader


def is_event(record: tuple[Any, bytes, Any], contact: str, version: int) -> bool:
    payload = json.loads(record[1])
    return bool(payload["contact_id"] == contact and payload["version"] == version)


def with_event_id(record: tuple[Any, bytes, Any], event_id: uuid.UUID) -> tuple[Any, bytes, Any]:
    payload = json.loads(record[1])
    payload["event_id"] = str(event_id)
    return record[0], json.dumps(payload).encode(), record[2]


def altered(record: tuple[Any, bytes, Any]) -> tuple[Any, bytes, Any]:
    payload = json.loads(record[1])
    payload["interaction_count"] += 100
    return record[0], json.dumps(payload).encode(), record[2]
