"""The unit of work: one consumed batch, conversation by conversation (DESIGN.md, data flow).

Per conversation: a short read → one extraction with no connection held → one write
transaction under the state's row lock. Redelivered turns are recognised by event_id and
cost neither an LLM call nor a count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import structlog

from schemas import (
    ConversationKey,
    ConversationState,
    ConversationTurn,
    DealStage,
    QualificationState,
)
from worker.errors import TransientError
from worker.extract.port import ExtractionResult, Extractor, TurnText
from worker.ops import metrics, tracing
from worker.qualify.versioning import NextVersion, next_version, order_turns, update_event
from worker.store import outbox
from worker.store.repositories import ConversationStateRepository

log = structlog.get_logger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class ConversationOutcome:
    key: ConversationKey
    applied: int = 0  # turns stored and counted by this call
    duplicates: int = 0  # turns that were already stored
    version: int | None = None  # the version written, None when nothing was new
    extraction_status: str | None = None
    rejected: str | None = None  # why PostgreSQL refused this conversation's data, if it did
    conflicts: tuple[ConversationTurn, ...] = ()  # reused event_ids with other content


@dataclass(frozen=True, kw_only=True)
class BatchOutcome:
    conversations: list[ConversationOutcome]
    batch_conflicts: list[ConversationTurn] = field(default_factory=list)

    @property
    def conflicts(self) -> set[tuple[UUID, str]]:
        """(event_id, fingerprint) of every turn that lost to an earlier one with its id."""
        losers = [*self.batch_conflicts, *(t for c in self.conversations for t in c.conflicts)]
        return {(t.event_id, t.fingerprint()) for t in losers}

    @property
    def applied(self) -> int:
        return sum(c.applied for c in self.conversations)

    @property
    def duplicates(self) -> int:
        return sum(c.duplicates for c in self.conversations)

    @property
    def rejected(self) -> dict[ConversationKey, str]:
        return {c.key: c.rejected for c in self.conversations if c.rejected is not None}


@dataclass(frozen=True, kw_only=True)
class _Snapshot:
    """What the short read saw; the write transaction re-reads the state under its lock."""

    state: ConversationState | None
    new_turns: list[ConversationTurn]
    pending: list[TurnText]
    conflicts: list[ConversationTurn]


def group_by_conversation(
    turns: Sequence[ConversationTurn],
) -> tuple[dict[ConversationKey, list[ConversationTurn]], list[ConversationTurn]]:
    """Turns grouped by the payload's conversation, each group in conversation order.

    An event_id repeated inside the batch is kept once; a repeat with other content is a
    conflict (the first one wins), returned separately.
    """
    first: dict[UUID, ConversationTurn] = {}
    conflicts: list[ConversationTurn] = []
    for turn in turns:
        seen = first.setdefault(turn.event_id, turn)
        if seen is not turn and seen.fingerprint() != turn.fingerprint():
            conflicts.append(turn)
    groups: dict[ConversationKey, list[ConversationTurn]] = {}
    for turn in first.values():
        groups.setdefault(turn.key, []).append(turn)
    return {key: order_turns(group) for key, group in groups.items()}, conflicts


def as_turn_text(turn: ConversationTurn) -> TurnText:
    return TurnText(
        event_id=turn.event_id,
        speaker=turn.speaker,
        channel=turn.channel,
        text=turn.text,
        occurred_at=turn.occurred_at,
    )


@dataclass(kw_only=True)
class QualificationService:
    repository: ConversationStateRepository
    extractor: Extractor
    update_topic: str
    concurrency: int = 8
    max_pending_turns: int = 100  # caps one prompt after a long LLM outage; the rest follow
    clock: Callable[[], datetime] = utc_now
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)

    async def process_batch(self, turns: Sequence[ConversationTurn]) -> BatchOutcome:
        """Every conversation is attempted; if any failed, raise so nothing is committed.

        Conversations that did commit stay committed: the redelivery finds their turns
        stored and skips them.
        """
        groups, conflicts = group_by_conversation(turns)
        results = await asyncio.gather(
            *(self._bounded(key, group) for key, group in groups.items()), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise TransientError(
                f"{len(failures)} of {len(groups)} conversations failed: {failures[0]!r}"
            ) from failures[0]
        outcomes = [r for r in results if isinstance(r, ConversationOutcome)]
        return BatchOutcome(conversations=outcomes, batch_conflicts=conflicts)

    async def _bounded(
        self, key: ConversationKey, turns: list[ConversationTurn]
    ) -> ConversationOutcome:
        async with self._slots:
            try:
                with tracing.span("conversation", conversation=str(key), turns=len(turns)):
                    return await self.process_conversation(key, turns)
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as error:
                # Valid by the contract but refused by the database: retrying cannot help and
                # would stall the partition, so the consumer dead-letters these turns instead.
                log.error(
                    "conversation_rejected", conversation=str(key), error=type(error).__name__
                )
                return ConversationOutcome(key=key, rejected=f"{type(error).__name__}: {error}")

    async def process_conversation(
        self, key: ConversationKey, turns: list[ConversationTurn]
    ) -> ConversationOutcome:
        snapshot = await self._read(key, turns)
        if not snapshot.new_turns:
            return ConversationOutcome(
                key=key,
                duplicates=len(turns) - len(snapshot.conflicts),
                conflicts=tuple(snapshot.conflicts),
            )
        to_extract = snapshot.pending + [as_turn_text(t) for t in snapshot.new_turns]
        known, stage = QualificationState(), DealStage.PROSPECTING  # a new conversation
        if snapshot.state is not None:
            known, stage = snapshot.state.qualification, snapshot.state.deal_stage
        result = await self._extract(to_extract, known, stage)
        try:
            with tracing.span("write_transaction", turns=len(snapshot.new_turns)):
                applied, version, raced = await self._write(key, snapshot, result, len(to_extract))
        except _NothingNew as nothing:  # every new turn was stored by someone else meanwhile
            applied, version, raced = 0, None, nothing.conflicts
        conflicts = (*snapshot.conflicts, *raced)
        return ConversationOutcome(
            key=key,
            applied=applied,
            duplicates=len(turns) - applied - len(conflicts),
            version=version,
            extraction_status=result.status if version is not None else None,
            conflicts=conflicts,
        )

    async def _extract(
        self, turns: list[TurnText], known: QualificationState, stage: DealStage
    ) -> ExtractionResult:
        """The one extractor call, with no connection held: timed, counted and traced."""
        with tracing.span("extraction", turns=len(turns)) as span:
            started = time.perf_counter()
            result = await self.extractor.extract_signals(turns, known, stage)
            result = replace(result, seconds=time.perf_counter() - started)
            span.set_attribute("llm.model", result.model)
            span.set_attribute("extraction.status", result.status)
            span.set_attribute("llm.prompt_tokens", result.prompt_tokens)
            span.set_attribute("llm.completion_tokens", result.completion_tokens)
        metrics.observe_extraction(result, result.seconds)
        return result

    async def _read(self, key: ConversationKey, turns: list[ConversationTurn]) -> _Snapshot:
        async with self.repository.tenant_connection(key.tenant_id) as conn:
            stored = await self.repository.find_stored_turns(
                conn, key.tenant_id, [t.event_id for t in turns]
            )
            new_turns = [t for t in turns if t.event_id not in stored]
            conflicts = [
                t for t in turns if stored.get(t.event_id, t.fingerprint()) != t.fingerprint()
            ]
            if not new_turns:
                return _Snapshot(state=None, new_turns=[], pending=[], conflicts=conflicts)
            state, pending = await self.repository.read_snapshot(
                conn, key, pending_limit=self.max_pending_turns
            )
        return _Snapshot(state=state, new_turns=new_turns, pending=pending, conflicts=conflicts)

    async def _write(
        self,
        key: ConversationKey,
        snapshot: _Snapshot,
        result: ExtractionResult,
        extracted_turns: int,
    ) -> tuple[int, int, list[ConversationTurn]]:
        """Returns (turns applied, version written, turns that turned out to conflict)."""
        started = time.perf_counter()
        now = self.clock()
        extracted_at = now if result.status == "ok" else None
        async with self.repository.tenant_connection(key.tenant_id) as conn, conn.transaction():
            state = await self.repository.lock_or_create_state(
                conn, key, snapshot.new_turns[-1].contact_email
            )
            inserted = await self.repository.insert_turns(
                conn, key, snapshot.new_turns, extracted_at=extracted_at
            )
            raced = await self._raced_conflicts(conn, key, snapshot.new_turns, inserted)
            if not inserted:
                raise _NothingNew(raced)  # rolls back the (possibly just created) state row
            applied = [t for t in snapshot.new_turns if t.event_id in inserted]
            if extracted_at is not None:
                await self.repository.mark_turns_extracted(
                    conn, key.tenant_id, [t.event_id for t in snapshot.pending], extracted_at
                )
            version = next_version(state, applied, result, now=now)
            await self._save(conn, key, state, version, result, applied, extracted_turns, now)
        self._log_version(key, version, result, len(applied), time.perf_counter() - started)
        return len(applied), version.state.version, raced

    async def _raced_conflicts(
        self,
        conn: asyncpg.Connection,
        key: ConversationKey,
        new_turns: list[ConversationTurn],
        inserted: set[UUID],
    ) -> list[ConversationTurn]:
        """New at our read but not inserted: a concurrent redelivery of the same turn (harmless)
        or an event_id taken by other content, maybe in another tenant (a conflict)."""
        raced = [t for t in new_turns if t.event_id not in inserted]
        if not raced:
            return []
        stored = await self.repository.find_stored_turns(
            conn, key.tenant_id, [t.event_id for t in raced]
        )
        return [t for t in raced if stored.get(t.event_id) != t.fingerprint()]

    async def _save(
        self,
        conn: asyncpg.Connection,
        key: ConversationKey,
        before: ConversationState,
        version: NextVersion,
        result: ExtractionResult,
        applied: list[ConversationTurn],
        extracted_turns: int,
        now: datetime,
    ) -> None:
        await self.repository.write_state(conn, version.state)
        if (change := version.stage_change) is not None:
            await self.repository.record_stage_transition(
                conn,
                key,
                version=version.state.version,
                from_stage=change.from_stage,
                to_stage=change.to_stage,
                accepted=change.accepted,
                reason=change.reason,
            )
        event = update_event(
            key,
            before,
            version,
            result,
            turn_event_ids=[t.event_id for t in applied],
            extracted_turns=extracted_turns,
            now=now,
        )
        await outbox.enqueue(conn, self.update_topic, event)

    async def reextract(self, key: ConversationKey, *, stored_turns: bool) -> ConversationOutcome:
        """Extract a stored conversation again and write the result as a new version, through
        the same write transaction and outbox as new turns (`python -m worker reextract`).

        Reads its pending turns (whose extraction failed), or with `stored_turns` its latest
        stored turns (after a prompt or model change). A failed extraction writes nothing.
        """
        async with self.repository.tenant_connection(key.tenant_id) as conn:
            state = await self.repository.read_state(conn, key)
            read = self.repository.recent_turns if stored_turns else self.repository.pending_turns
            turns = await read(conn, key, limit=self.max_pending_turns)
        if state is None or not turns:
            return ConversationOutcome(key=key)
        result = await self._extract(turns, state.qualification, state.deal_stage)
        if result.status != "ok":
            return ConversationOutcome(key=key, extraction_status=result.status)
        with tracing.span("write_transaction", turns=0):
            version = await self._write_reextraction(key, turns, result)
        return ConversationOutcome(key=key, version=version, extraction_status=result.status)

    async def _write_reextraction(
        self, key: ConversationKey, turns: list[TurnText], result: ExtractionResult
    ) -> int:
        started = time.perf_counter()
        now = self.clock()
        async with self.repository.tenant_connection(key.tenant_id) as conn, conn.transaction():
            state = await self.repository.lock_state(conn, key)
            assert state is not None, "the worker's role cannot delete conversations"
            await self.repository.mark_turns_extracted(
                conn, key.tenant_id, [t.event_id for t in turns], now
            )
            version = next_version(state, [], result, now=now)  # merged against the locked state
            await self._save(conn, key, state, version, result, [], len(turns), now)
        self._log_version(key, version, result, 0, time.perf_counter() - started)
        return version.state.version

    def _log_version(
        self,
        key: ConversationKey,
        version: NextVersion,
        result: ExtractionResult,
        applied: int,
        write_s: float = 0.0,
    ) -> None:
        metrics.observe_version(version, result.status)
        change = version.stage_change
        log.info(
            "state_version_committed",
            tenant_id=str(key.tenant_id),
            conversation=str(key),
            version=version.state.version,
            turns_applied=applied,
            extraction=result.status,
            stage=version.state.deal_stage.value,
            stage_change=f"{change.from_stage.value}->{change.to_stage.value}"
            f" {'accepted' if change.accepted else 'rejected'}"
            if change
            else None,
            extract_ms=round(result.seconds * 1000, 1),
            write_ms=round(write_s * 1000, 1),
        )


class _NothingNew(Exception):
    """Raised inside the write transaction to roll it back when no turn was new after all."""

    def __init__(self, conflicts: list[ConversationTurn]) -> None:
        super().__init__("no new turns")
        self.conflicts = conflicts
