"""ConversationStateRepository: asyncpg calls over the named SQL in sql/queries/.

Methods that take a connection run inside the caller's transaction and never commit on their
own; the pool-level methods are each a whole unit of work.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from schemas import (
    Channel,
    ConversationKey,
    ConversationState,
    ConversationTurn,
    DealStage,
    NextAction,
    QualificationSignals,
    QualificationState,
    Speaker,
)
from worker.errors import PermanentError
from worker.extract.port import TurnText
from worker.qualify.merge import merge_qualification_signals
from worker.store.database import queries


class StateNotFound(PermanentError):
    pass


def state_from_row(row: asyncpg.Record) -> ConversationState:
    return ConversationState(
        id=row["id"],
        tenant_id=row["tenant_id"],
        account_id=row["account_id"],
        contact_id=row["contact_id"],
        contact_email=row["contact_email"],
        contact_name=row["contact_name"],
        deal_stage=row["deal_stage"],
        persona_type=row["persona_type"],
        qualification=QualificationState.model_validate(row["qualification_data"] or {}),
        interaction_count=row["interaction_count"],
        last_interaction=row["last_interaction"],
        last_channel=row["last_channel"],
        escalated=row["escalated"],
        escalation_reason=row["escalation_reason"],
        confidence_score=row["confidence_score"],
        next_actions=[NextAction.model_validate(a) for a in row["next_actions"]],
        follow_up_scheduled=row["follow_up_scheduled"],
        metadata=row["metadata_json"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


def pending_from_row(row: asyncpg.Record) -> list[TurnText]:
    """The `pending_*` arrays of `read_snapshot` (NULL when nothing is pending) as turns."""
    columns = ("event_ids", "speakers", "channels", "texts", "occurred_ats")
    event_ids, speakers, channels, texts, times = (row[f"pending_{c}"] or [] for c in columns)
    return [
        TurnText(
            event_id=event_id,
            speaker=Speaker(speaker),
            channel=Channel(channel),
            text=text,
            occurred_at=occurred_at,
        )
        for event_id, speaker, channel, text, occurred_at in zip(
            event_ids, speakers, channels, texts, times, strict=True
        )
    ]


def turn_text_from_row(row: asyncpg.Record) -> TurnText:
    return TurnText(
        event_id=row["event_id"],
        speaker=Speaker(row["speaker"]),
        channel=Channel(row["channel"]),
        text=row["text"],
        occurred_at=row["occurred_at"],
    )


def state_to_params(state: ConversationState) -> tuple[Any, ...]:
    """The parameters of `upsert_state`, in its order."""
    return (
        state.tenant_id,
        state.account_id,
        state.contact_id,
        state.contact_email,
        state.contact_name,
        state.deal_stage.value,
        state.persona_type.value,
        state.qualification.model_dump(mode="json"),
        state.interaction_count,
        state.last_interaction,
        state.last_channel.value if state.last_channel else None,
        state.escalated,
        state.escalation_reason,
        state.confidence_score,
        [a.model_dump(mode="json") for a in state.next_actions],
        state.follow_up_scheduled,
        state.metadata,
        state.updated_at,
        state.version,
    )


@dataclass(kw_only=True)
class ConversationStateRepository:
    pool: asyncpg.Pool

    @contextlib.asynccontextmanager
    async def tenant_connection(self, tenant_id: UUID) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection in `tenant_id`'s context: row-level security shows it that
        tenant's rows only, whatever a query's WHERE clause says."""
        async with self.pool.acquire() as conn:
            await conn.execute(queries()["set_tenant"], str(tenant_id))
            yield conn

    # --- whole units of work -------------------------------------------------------------

    async def get_state(
        self, tenant_id: UUID, account_id: str, contact_id: str
    ) -> ConversationState | None:
        async with self.tenant_connection(tenant_id) as conn:
            return await self.read_state(conn, ConversationKey(tenant_id, account_id, contact_id))

    async def save_state(self, state: ConversationState) -> ConversationState:
        async with self.tenant_connection(state.tenant_id) as conn:
            return await self.write_state(conn, state)

    async def list_states_by_tenant(
        self, tenant_id: UUID, deal_stage: DealStage | None = None
    ) -> list[ConversationState]:
        stage = deal_stage.value if deal_stage else None
        async with self.tenant_connection(tenant_id) as conn:
            rows = await conn.fetch(queries()["list_states_by_tenant"], tenant_id, stage)
        return [state_from_row(row) for row in rows]

    async def update_qualification(
        self,
        tenant_id: UUID,
        account_id: str,
        contact_id: str,
        new_signals: QualificationSignals,
    ) -> ConversationState:
        """Merge `new_signals` into the stored state under its row lock; version + 1."""
        key = ConversationKey(tenant_id, account_id, contact_id)
        async with self.tenant_connection(tenant_id) as conn, conn.transaction():
            state = await self.lock_state(conn, key)
            if state is None:
                raise StateNotFound(f"no conversation state for {key}")
            now = datetime.now(UTC)
            merged = merge_qualification_signals(state.qualification, new_signals, now=now)
            updated = state.model_copy(
                update={"qualification": merged, "updated_at": now, "version": state.version + 1}
            )
            return await self.write_state(conn, updated)

    # --- steps inside the caller's transaction -------------------------------------------

    async def read_state(
        self, conn: asyncpg.Connection, key: ConversationKey
    ) -> ConversationState | None:
        """Unlocked snapshot, for the short read before extraction."""
        row = await conn.fetchrow(queries()["get_state"], *key)
        return None if row is None else state_from_row(row)

    async def read_snapshot(
        self, conn: asyncpg.Connection, key: ConversationKey, *, pending_limit: int
    ) -> tuple[ConversationState | None, list[TurnText]]:
        """The short read before extraction in one round trip: the state (unlocked) and its
        pending turns, oldest first; what `read_state` and `pending_turns` return together."""
        row = await conn.fetchrow(queries()["read_snapshot"], *key, pending_limit)
        if row is None:
            return None, []
        return state_from_row(row), pending_from_row(row)

    async def lock_state(
        self, conn: asyncpg.Connection, key: ConversationKey
    ) -> ConversationState | None:
        row = await conn.fetchrow(queries()["lock_state"], *key)
        return None if row is None else state_from_row(row)

    async def lock_or_create_state(
        self, conn: asyncpg.Connection, key: ConversationKey, contact_email: str
    ) -> ConversationState:
        """The conversation's row, locked; created (version 0) when this is its first turn."""
        state = await self.lock_state(conn, key)
        if state is not None:
            return state
        row = await conn.fetchrow(queries()["insert_empty_state"], *key, contact_email)
        if row is not None:
            return state_from_row(row)  # our insert: the row is ours until commit
        # Someone else created it between our two statements; their commit lets us lock it.
        state = await self.lock_state(conn, key)
        assert state is not None, "a conversation row cannot vanish inside a transaction"
        return state

    async def write_state(
        self, conn: asyncpg.Connection, state: ConversationState
    ) -> ConversationState:
        row = await conn.fetchrow(queries()["upsert_state"], *state_to_params(state))
        return state_from_row(row)

    async def record_stage_transition(
        self,
        conn: asyncpg.Connection,
        key: ConversationKey,
        *,
        version: int,
        from_stage: DealStage,
        to_stage: DealStage,
        accepted: bool,
        reason: str,
    ) -> None:
        await conn.execute(
            queries()["insert_stage_transition"],
            *key,
            version,
            from_stage.value,
            to_stage.value,
            accepted,
            reason,
        )

    async def find_stored_turns(
        self, conn: asyncpg.Connection, tenant_id: UUID, event_ids: Sequence[UUID]
    ) -> dict[UUID, str]:
        """The stored fingerprint of each of `event_ids` this tenant already has."""
        rows = await conn.fetch(queries()["find_stored_turns"], tenant_id, list(event_ids))
        return {row["event_id"]: row["fingerprint"] for row in rows}

    async def pending_turns(
        self, conn: asyncpg.Connection, key: ConversationKey, *, limit: int
    ) -> list[TurnText]:
        rows = await conn.fetch(queries()["pending_turns"], *key, limit)
        return [turn_text_from_row(row) for row in rows]

    async def insert_turns(
        self,
        conn: asyncpg.Connection,
        key: ConversationKey,
        turns: Sequence[ConversationTurn],
        *,
        extracted_at: datetime | None,
    ) -> set[UUID]:
        """Stores the turns not stored yet; returns the event ids that were new."""
        rows = await conn.fetch(
            queries()["insert_turns"],
            *key,
            [t.event_id for t in turns],
            [t.speaker.value for t in turns],
            [t.channel.value for t in turns],
            [t.text for t in turns],
            [t.occurred_at for t in turns],
            [t.sequence for t in turns],
            [t.metadata for t in turns],
            [t.fingerprint() for t in turns],
            [extracted_at] * len(turns),
        )
        return {row["event_id"] for row in rows}

    async def mark_turns_extracted(
        self, conn: asyncpg.Connection, tenant_id: UUID, event_ids: Sequence[UUID], when: datetime
    ) -> None:
        if event_ids:
            await conn.execute(queries()["mark_turns_extracted"], tenant_id, list(event_ids), when)

    async def count_turns(self, key: ConversationKey) -> tuple[int, int]:
        """(stored, pending) turns of one conversation."""
        async with self.tenant_connection(key.tenant_id) as conn:
            row = await conn.fetchrow(queries()["count_turns"], *key)
        return row["total"], row["pending"]

    # --- re-extraction (`python -m worker reextract`) ------------------------------------

    async def reextract_candidates(
        self,
        tenant_id: UUID,
        account_id: str | None = None,
        contact_id: str | None = None,
        *,
        pending_only: bool,
    ) -> list[ConversationKey]:
        async with self.tenant_connection(tenant_id) as conn:
            rows = await conn.fetch(
                queries()["reextract_candidates"], tenant_id, account_id, contact_id, pending_only
            )
        return [ConversationKey(tenant_id, row["account_id"], row["contact_id"]) for row in rows]

    async def recent_turns(
        self, conn: asyncpg.Connection, key: ConversationKey, *, limit: int
    ) -> list[TurnText]:
        rows = await conn.fetch(queries()["recent_turns"], *key, limit)
        return [turn_text_from_row(row) for row in rows]
