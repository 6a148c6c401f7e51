"""Deferred turns and the extraction schedule (migration 0007): what debounced extraction
stores at ingest, and how schedulers on many workers share the due conversations.

`DeferredTurns` runs on a tenant's unit of work (`Database.for_tenant` / `reading`); the
claims cross tenants through the owner's functions, like the pending sweeper's listing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from schemas import ConversationKey, ConversationTurn
from worker.store.database import queries


@dataclass(frozen=True, kw_only=True)
class Debounce:
    """When a conversation with deferred turns is due: quiet for `quiet`, or its oldest
    deferred turn waited `max_wait`."""

    quiet: timedelta
    max_wait: timedelta


@dataclass(frozen=True)
class DeferredTurns:
    conn: asyncpg.Connection

    async def find_deferred_turns(
        self, tenant_id: UUID, event_ids: Sequence[UUID]
    ) -> dict[UUID, str]:
        rows = await self.conn.fetch(queries()["find_deferred_turns"], tenant_id, list(event_ids))
        return {row["event_id"]: row["fingerprint"] for row in rows}

    async def defer(
        self,
        key: ConversationKey,
        turns: Sequence[ConversationTurn],
        *,
        now: datetime,
    ) -> set[UUID]:
        """Schedules the conversation, then stores the turns not stored yet; returns the event
        ids that were new."""
        await self.conn.execute(queries()["schedule_extraction"], *key, now)
        rows = await self.conn.fetch(
            queries()["insert_deferred_turns"],
            *key,
            now,
            [t.event_id for t in turns],
            [t.model_dump(mode="json") for t in turns],
            [t.fingerprint() for t in turns],
        )
        return {row["event_id"] for row in rows}

    async def read(self, key: ConversationKey, *, limit: int) -> list[ConversationTurn]:
        rows = await self.conn.fetch(queries()["read_deferred_turns"], *key, limit)
        return [ConversationTurn.model_validate(row["turn"]) for row in rows]

    async def delete(self, tenant_id: UUID, event_ids: Sequence[UUID]) -> None:
        if event_ids:
            await self.conn.execute(queries()["delete_deferred_turns"], tenant_id, list(event_ids))

    async def release(
        self,
        key: ConversationKey,
        *,
        claim: UUID | None,
        extracted: Sequence[UUID],
    ) -> None:
        """Ends `claim` (None: no claim, e.g. a flush before an override): deletes the turns
        now stored, then keeps the conversation scheduled for what was deferred meanwhile, or
        takes it off the schedule. The due row is locked first, so a batch deferring a turn
        right now is either seen or waits."""
        await self.conn.fetchrow(queries()["lock_extraction_due"], *key)
        await self.delete(key.tenant_id, extracted)
        await self.conn.execute(queries()["reschedule_extraction"], *key, claim)
        await self.conn.execute(queries()["unschedule_extraction"], *key, claim)
