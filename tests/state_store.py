"""Test-only access to stored states: writing a state as it is, and counting turns.

The worker never writes a state outside a version (every change goes through the commit path
under the row lock); these helpers set up and inspect the database around what it does.
"""

from __future__ import annotations

from schemas import ConversationKey, ConversationState
from worker.settings import Settings
from worker.store.database import Database

RULES = Settings(llm_model="rules", update_topic="updates")


async def save_state(database: Database, state: ConversationState) -> ConversationState:
    """Upsert `state` as given (no lock, no version, no event)."""
    async with database.for_tenant(state.tenant_id) as tx:
        return await tx.states.upsert_state(state)


async def count_turns(database: Database, key: ConversationKey) -> tuple[int, int]:
    """(stored, pending) turns of one conversation."""
    async with database.reading(key.tenant_id) as tx:
        row = await tx.conn.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE extracted_at IS NULL) AS pending "
            "FROM tenant.conversation_turns "
            "WHERE tenant_id = $1 AND account_id = $2 AND contact_id = $3",
            *key,
        )
    return row["total"], row["pending"]
