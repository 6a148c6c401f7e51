"""The short read before extraction: a conversation's state and pending turns in one round trip."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from schemas import ConversationKey, ConversationTurn
from tests.harness import turn
from worker.store.repositories import ConversationStateRepository


def turns_of(*payloads: dict[str, Any]) -> list[ConversationTurn]:
    return [ConversationTurn.model_validate(p) for p in payloads]


async def test_snapshot_of_a_new_conversation_is_empty(
    repository: ConversationStateRepository,
) -> None:
    key = ConversationKey(uuid.uuid4(), "acme", "new")
    async with repository.tenant_connection(key.tenant_id) as conn:
        assert await repository.read_snapshot(conn, key, pending_limit=10) == (None, [])


async def test_snapshot_holds_the_state_and_its_oldest_pending_turns(
    repository: ConversationStateRepository,
) -> None:
    tenant = uuid.uuid4()
    key = ConversationKey(tenant, "acme", "c-1")
    extracted = turns_of(turn(tenant, "acme", "c-1", 0, "already extracted"))
    pending = turns_of(*(turn(tenant, "acme", "c-1", n, f"pending {n}") for n in (3, 1, 2)))
    async with repository.tenant_connection(tenant) as conn, conn.transaction():
        await repository.lock_or_create_state(conn, key, "c-1@example.com")
        await repository.insert_turns(conn, key, extracted, extracted_at=datetime.now(UTC))
        await repository.insert_turns(conn, key, pending, extracted_at=None)
    async with repository.tenant_connection(tenant) as conn:
        state, turns = await repository.read_snapshot(conn, key, pending_limit=2)
        separately = await repository.pending_turns(conn, key, limit=2)
    assert state is not None and (state.account_id, state.contact_id) == ("acme", "c-1")
    assert [t.text for t in turns] == ["pending 1", "pending 2"]
    assert turns == separately
