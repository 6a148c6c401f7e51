"""Deferred turns and the extraction schedule (migration 0007): what deferred extraction
stores at ingest, and how schedulers on many workers share the due conversations.

`DeferredTurns` runs on a tenant's unit of work (`Database.for_tenant` / `reading`); the
claims cross tenants through the owner's functions, like the pending sweeper's listing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import asyncpg
from pydantic import ValidationError

from schemas import ConversationKey, ConversationTurn
from worker.store.postgres import queries


@dataclass(frozen=True, kw_only=True)
class Debounce:
    """When a conversation with deferred turns is due: quiet for `quiet`, or its oldest
    deferred turn waited `max_wait`."""

    quiet: timedelta
    max_wait: timedelta


@dataclass(frozen=True, kw_only=True)
class UnreadableTurn:
    """A deferred row that no longer validates (e.g. MAX_TURN_CHARS was lowered since)."""

    event_id: UUID
    stored: dict[str, Any]  # the turn as stored
    detail: str


@dataclass(frozen=True, kw_only=True)
class DeferredRead:
    turns: list[ConversationTurn] = field(default_factory=list)
    unreadable: list[UnreadableTurn] = field(default_factory=list)

    @property
    def event_ids(self) -> list[UUID]:
        return [t.event_id for t in self.turns] + [u.event_id for u in self.unreadable]


# A claim of one conversation's deferred turns: taken, held by another live lease, or nothing
# is deferred for the conversation.
ClaimResult = Literal["claimed", "busy", "none"]


@dataclass(frozen=True)
class DeferredTurns:
    conn: asyncpg.Connection
    tenant_id: UUID  # the tenant the connection is bound to

    async def find_deferred_turns(self, event_ids: Sequence[UUID]) -> dict[UUID, str]:
        rows = await self.conn.fetch(
            queries()["find_deferred_turns"], self.tenant_id, list(event_ids)
        )
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

    async def read(self, key: ConversationKey, *, limit: int, max_turn_chars: int) -> DeferredRead:
        """Validated as the consumer validated them (the worker's MAX_TURN_CHARS); a row that
        no longer validates comes back as unreadable, never as an error."""
        rows = await self.conn.fetch(queries()["read_deferred_turns"], *key, limit)
        read = DeferredRead()
        context = {"max_turn_chars": max_turn_chars}
        for row in rows:
            try:
                read.turns.append(ConversationTurn.model_validate(row["turn"], context=context))
            except ValidationError as error:
                detail = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}"
                    for e in error.errors()
                )
                read.unreadable.append(
                    UnreadableTurn(event_id=row["event_id"], stored=row["turn"], detail=detail)
                )
        return read

    async def claim(self, key: ConversationKey, *, claim: UUID, lease: timedelta) -> ClaimResult:
        """Claims the conversation's deferred turns whether due or not (an override flushes
        them before it applies), unless another claim's lease still runs."""
        row = await self.conn.fetchrow(queries()["claim_deferred_conversation"], *key, claim, lease)
        if row is None:
            return "none"
        return "claimed" if row["claimed"] else "busy"

    async def delete(self, event_ids: Sequence[UUID]) -> None:
        if event_ids:
            await self.conn.execute(
                queries()["delete_deferred_turns"], self.tenant_id, list(event_ids)
            )

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
        await self.delete(extracted)
        await self.conn.execute(queries()["reschedule_extraction"], *key, claim)
        await self.conn.execute(queries()["unschedule_extraction"], *key, claim)
