"""The short read before extraction: a conversation's erasure count, state and pending turns in
one round trip."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from schemas import ConversationKey, ConversationTurn
from tests.harness import turn
from worker.store.database import Database
from worker.store.erasure import erase_conversation


def turns_of(*payloads: dict[str, Any]) -> list[ConversationTurn]:
    return [ConversationTurn.model_validate(p) for p in payloads]


async def test_snapshot_of_a_new_conversation_is_empty(database: Database) -> None:
    key = ConversationKey(uuid.uuid4(), "acme", "new")
    async with database.reading(key.tenant_id) as tx:
        read = await tx.states.read_snapshot(key, pending_limit=10)
    assert (read.erasures, read.state, read.pending) == (0, None, [])


async def test_snapshot_holds_the_state_and_its_oldest_pending_turns(database: Database) -> None:
    tenant = uuid.uuid4()
    key = ConversationKey(tenant, "acme", "c-1")
    extracted = turns_of(turn(tenant, "acme", "c-1", 0, "already extracted"))
    pending = turns_of(*(turn(tenant, "acme", "c-1", n, f"pending {n}") for n in (3, 1, 2)))
    async with database.for_tenant(tenant) as tx:
        await tx.states.lock_or_insert_state(key, "c-1@example.com")
        await tx.turns.insert_turns(key, extracted, extracted_at=datetime.now(UTC))
        await tx.turns.insert_turns(key, pending, extracted_at=None)
    async with database.reading(tenant) as tx:
        read = await tx.states.read_snapshot(key, pending_limit=2)
        separately = await tx.turns.pending_turns(key, limit=2)
    state, turns = read.state, read.pending
    assert read.erasures == 0
    assert state is not None and (state.account_id, state.contact_id) == ("acme", "c-1")
    assert [t.text for t in turns] == ["pending 1", "pending 2"]
    assert turns == separately


async def test_snapshot_counts_the_erasures_as_the_guard_does(
    database: Database, database_url: str
) -> None:
    """Erased twice, then started again: the count the write compares with is the guard's."""
    key = ConversationKey(uuid.uuid4(), "acme", "erased")
    for _ in range(2):
        async with database.for_tenant(key.tenant_id) as tx:
            await tx.states.lock_or_insert_state(key, "erased@example.com")
        await erase_conversation(database_url, key, erased_by="test")
    async with database.for_tenant(key.tenant_id) as tx:
        await tx.states.lock_or_insert_state(key, "erased@example.com")
    async with database.reading(key.tenant_id) as tx:
        read = await tx.states.read_snapshot(key, pending_limit=10)
        guard = await tx.erasures.erasures(key)
    assert read.state is not None
    assert read.erasures == guard == 2
