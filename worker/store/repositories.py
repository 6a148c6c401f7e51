"""Repositories bound to one tenant's connection: asyncpg calls over the named SQL in sql/queries/.

They are handed out by the unit of work (`Database.for_tenant`) and run inside its transaction:
none of them commits on its own. Each method runs the query of the same name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from schemas import (
    Actor,
    Channel,
    ConversationKey,
    ConversationState,
    ConversationTurn,
    DealStage,
    NextAction,
    Owner,
    QualificationOverride,
    QualificationState,
    Speaker,
    StageMove,
    Suggestion,
)
from worker.extract.port import TurnText
from worker.store.erasure import conversation_hash
from worker.store.postgres import REFUSED_BY_DATABASE, queries


class _TriedOnly(Exception):
    """Rolls a trial insert's savepoint back."""


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
        stalled_from=row["stalled_from"],
        owners={d: Owner.model_validate(o) for d, o in (row["owners"] or {}).items()},
        suggestions={
            d: Suggestion.model_validate(s) for d, s in (row["suggestions"] or {}).items()
        },
        incarnation=row["incarnation"],
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
        state.stalled_from.value if state.stalled_from else None,
        {d: o.model_dump(mode="json") for d, o in state.owners.items()},
        {d: s.model_dump(mode="json") for d, s in state.suggestions.items()},
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


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """`read_snapshot`: what the short read before an extraction saw."""

    erasures: int  # of the conversation's key (ErasureGuard), counted with the read
    state: ConversationState | None  # None: a new conversation
    pending: list[TurnText]  # turns whose extraction failed open, oldest first


@dataclass(frozen=True)
class StateRepository:
    conn: asyncpg.Connection
    tenant_id: UUID  # the tenant the connection is bound to

    async def read_state(self, key: ConversationKey) -> ConversationState | None:
        """Unlocked snapshot."""
        row = await self.conn.fetchrow(queries()["read_state"], *key)
        return None if row is None else state_from_row(row)

    async def read_snapshot(self, key: ConversationKey, *, pending_limit: int) -> Snapshot:
        """The short read before extraction in one round trip: the key's erasure count, the
        state (unlocked) and its pending turns, oldest first, all in one snapshot."""
        row = await self.conn.fetchrow(
            queries()["read_snapshot"], *key, pending_limit, conversation_hash(key)
        )
        assert row is not None  # one row, with or without a state
        if row["tenant_id"] is None:  # no state row: the state's columns are NULL
            return Snapshot(erasures=row["erasures"], state=None, pending=[])
        return Snapshot(
            erasures=row["erasures"], state=state_from_row(row), pending=pending_from_row(row)
        )

    async def lock_state(self, key: ConversationKey) -> ConversationState | None:
        row = await self.conn.fetchrow(queries()["lock_state"], *key)
        return None if row is None else state_from_row(row)

    async def lock_or_insert_state(
        self, key: ConversationKey, contact_email: str
    ) -> ConversationState:
        """The conversation's row, locked; inserted (version 0) when this is its first turn."""
        state = await self.lock_state(key)
        if state is not None:
            return state
        row = await self.conn.fetchrow(
            queries()["insert_empty_state"], *key, contact_email, conversation_hash(key)
        )
        if row is not None:
            return state_from_row(row)  # our insert: the row is ours until commit
        # Someone else created it between our two statements; their commit lets us lock it.
        state = await self.lock_state(key)
        assert state is not None, "a conversation row cannot vanish inside a transaction"
        return state

    async def upsert_state(self, state: ConversationState) -> ConversationState:
        row = await self.conn.fetchrow(queries()["upsert_state"], *state_to_params(state))
        return state_from_row(row)

    async def list_states_by_tenant(
        self, deal_stage: DealStage | None = None
    ) -> list[ConversationState]:
        stage = deal_stage.value if deal_stage else None
        rows = await self.conn.fetch(queries()["list_states_by_tenant"], self.tenant_id, stage)
        return [state_from_row(row) for row in rows]


@dataclass(frozen=True)
class TurnRepository:
    conn: asyncpg.Connection
    tenant_id: UUID  # the tenant the connection is bound to

    async def find_stored_turns(self, event_ids: Sequence[UUID]) -> dict[UUID, str]:
        """The stored fingerprint of each of `event_ids` this tenant already has."""
        rows = await self.conn.fetch(
            queries()["find_stored_turns"], self.tenant_id, list(event_ids)
        )
        return {row["event_id"]: row["fingerprint"] for row in rows}

    async def pending_turns(self, key: ConversationKey, *, limit: int) -> list[TurnText]:
        rows = await self.conn.fetch(queries()["pending_turns"], *key, limit)
        return [turn_text_from_row(row) for row in rows]

    async def recent_turns(self, key: ConversationKey, *, limit: int) -> list[TurnText]:
        rows = await self.conn.fetch(queries()["recent_turns"], *key, limit)
        return [turn_text_from_row(row) for row in rows]

    async def insert_turns(
        self,
        key: ConversationKey,
        turns: Sequence[ConversationTurn],
        *,
        extracted_at: datetime | None,
    ) -> set[UUID]:
        """Stores the turns not stored yet; returns the event ids that were new."""
        rows = await self.conn.fetch(
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

    async def refused_turns(
        self, key: ConversationKey, turns: Sequence[ConversationTurn]
    ) -> list[ConversationTurn]:
        """The turns PostgreSQL refuses to store, each tried on its own in a savepoint that is
        always rolled back: when it refused a conversation's turns together, which ones."""
        refused = []
        for turn in turns:
            try:
                async with self.conn.transaction():  # a savepoint inside the caller's transaction
                    await self.insert_turns(key, [turn], extracted_at=None)
                    raise _TriedOnly
            except _TriedOnly:
                pass
            except REFUSED_BY_DATABASE:
                refused.append(turn)
        return refused

    async def mark_turns_extracted(self, event_ids: Sequence[UUID], when: datetime) -> None:
        if event_ids:
            await self.conn.execute(
                queries()["mark_turns_extracted"], self.tenant_id, list(event_ids), when
            )

    async def cleared_turn_count(
        self, account_id: str | None = None, contact_id: str | None = None
    ) -> int:
        """Turns of the tenant (or of one conversation) whose text retention cleared."""
        count: int = await self.conn.fetchval(
            queries()["cleared_turn_count"], self.tenant_id, account_id, contact_id
        )
        return count

    async def reextract_candidates(
        self,
        account_id: str | None = None,
        contact_id: str | None = None,
        *,
        pending_only: bool,
    ) -> list[ConversationKey]:
        rows = await self.conn.fetch(
            queries()["reextract_candidates"], self.tenant_id, account_id, contact_id, pending_only
        )
        tenant_id = self.tenant_id
        return [ConversationKey(tenant_id, row["account_id"], row["contact_id"]) for row in rows]


@dataclass(frozen=True)
class StageTransitionRepository:
    conn: asyncpg.Connection

    async def insert_stage_transition(
        self,
        key: ConversationKey,
        *,
        version: int,
        change: StageMove,
        source: str,
        actor: Actor | None,
        step: int | None = None,
    ) -> None:
        """`step`: the position (1, 2, ...) of an AI stage walk's step; None otherwise."""
        await self.conn.execute(
            queries()["insert_stage_transition"],
            *key,
            version,
            change.from_stage.value,
            change.to_stage.value,
            change.accepted,
            change.reason,
            source,
            actor.model_dump(mode="json") if actor is not None else None,
            step,
        )

    async def stall_source(self, key: ConversationKey) -> str | None:
        """What stalled this (stalled) deal: `inactivity`, `turns`, `override` … or None when
        its latest accepted stage record is not the stall (or there is none)."""
        source: str | None = await self.conn.fetchval(queries()["stall_source"], *key)
        return source


@dataclass(frozen=True)
class OverrideRepository:
    conn: asyncpg.Connection
    tenant_id: UUID  # the tenant the connection is bound to

    async def insert_override(
        self, key: ConversationKey, override: QualificationOverride, *, version: int
    ) -> bool:
        """Stores the override as applied by `version`; False when its event_id was taken."""
        row = await self.conn.fetchrow(
            queries()["insert_override"],
            *key,
            override.event_id,
            override.actor.model_dump(mode="json"),
            override.model_dump(mode="json", exclude_unset=True),
            version,
            override.fingerprint(),
        )
        return row is not None

    async def find_stored_overrides(self, event_ids: Sequence[UUID]) -> dict[UUID, str]:
        rows = await self.conn.fetch(
            queries()["find_stored_overrides"], self.tenant_id, list(event_ids)
        )
        return {row["event_id"]: row["fingerprint"] for row in rows}
