"""The end-state checkers can fail: each broken promise, planted by hand, is reported.

Without this, a checker that always returns [] would let every reliability test pass.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from schemas import ConversationTurn
from tests.harness import TopicReader, fetch, turn
from tests.reliability.support import partial_state_problems, verify_end_state
from tests.state_store import RULES
from worker.qualify.service import build_service
from worker.store.unit_of_work import Database

TENANT = uuid.UUID("c4ec4e00-0000-4000-8000-00000000000c")
TEXTS = ["We need faster reporting.", "Our budget is $40k.", "The CFO signs off in June."]


async def test_each_broken_promise_is_reported(pool: asyncpg.Pool, database_url: str) -> None:
    service = build_service(RULES, Database(pool))
    sent = [turn(TENANT, "acme", f"c{c}", s, t) for c in range(6) for s, t in enumerate(TEXTS)]
    for payload in sent:  # one version per turn
        await service.process_batch([ConversationTurn.model_validate(payload)])
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


def altered(record: tuple[Any, bytes, Any]) -> tuple[Any, bytes, Any]:
    payload = json.loads(record[1])
    payload["interaction_count"] += 100
    return record[0], json.dumps(payload).encode(), record[2]
