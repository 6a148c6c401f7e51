"""The unit of work per conversation (DESIGN.md, data flow), and the fan-out of a batch.

Per conversation: a short read → one extraction with no connection held → one write
transaction under the state's row lock, through the one commit path. Redelivered turns are
recognised by event_id and cost neither an LLM call nor a count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import structlog

from schemas import (
    ConversationKey,
    ConversationState,
    ConversationTurn,
    DealStage,
)
from worker.errors import ConversationNotFound, PermanentError
from worker.extract.factory import build_extractor
from worker.extract.port import ExtractionResult, Extractor, TurnText
from worker.ops import metrics, tracing
from worker.qualify.commit import commit_version, log_version
from worker.qualify.criteria import DEFAULT_CRITERIA, StageCriteria
from worker.qualify.outcomes import (
    BatchOutcome,
    ConversationOutcome,
    StoredTurns,
    group_by_conversation,
)
from worker.qualify.versioning import gap_report, version_from_reextraction, version_from_turns
from worker.settings import Settings
from worker.store.unit_of_work import Database

log = structlog.get_logger(__name__)

# Caps one prompt after a long LLM outage; the rest follow in later extractions.
MAX_PENDING_TURNS = 100


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_turn_text(turn: ConversationTurn) -> TurnText:
    return TurnText(
        event_id=turn.event_id,
        speaker=turn.speaker,
        channel=turn.channel,
        text=turn.text,
        occurred_at=turn.occurred_at,
    )


@dataclass(frozen=True, kw_only=True)
class _Snapshot:
    """What the short read saw; the write transaction re-reads the state under its lock."""

    state: ConversationState | None
    turns: StoredTurns
    pending: list[TurnText]


@dataclass(frozen=True, kw_only=True)
class _Written:
    applied: int
    version: int | None
    raced: StoredTurns  # new at our read, stored by someone else by our write


def build_service(settings: Settings, database: Database) -> QualificationService:
    """The one place a service is assembled: the app, `reextract`, `eval` and the tests."""
    return QualificationService(
        database=database,
        extractor=build_extractor(settings),
        update_topic=settings.update_topic,
        concurrency=settings.llm_concurrency,
        criteria=settings.stage_criteria,
    )


@dataclass(kw_only=True)
class QualificationService:
    database: Database
    extractor: Extractor
    update_topic: str
    concurrency: int
    criteria: StageCriteria = DEFAULT_CRITERIA
    clock: Callable[[], datetime] = utc_now
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)

    async def process_batch(self, turns: Sequence[ConversationTurn]) -> BatchOutcome:
        """Every conversation is attempted. A permanent failure (data the database refuses)
        is that conversation's outcome; any other failure is raised, so the consumer commits
        nothing and the batch comes again (what did commit is then skipped by event_id)."""
        groups, conflicts = group_by_conversation(turns)
        results = await asyncio.gather(
            *(self._bounded(key, group) for key, group in groups.items()), return_exceptions=True
        )
        if failures := [r for r in results if isinstance(r, BaseException)]:
            log.warning("conversations_failed", failed=len(failures), conversations=len(groups))
            raise failures[0]
        outcomes = [r for r in results if isinstance(r, ConversationOutcome)]
        return BatchOutcome(conversations=outcomes, batch_conflicts=conflicts)

    async def _bounded(
        self, key: ConversationKey, turns: list[ConversationTurn]
    ) -> ConversationOutcome:
        async with self._slots:
            try:
                with tracing.span("conversation", conversation=str(key), turns=len(turns)):
                    return await self.process_conversation(key, turns)
            except PermanentError as error:
                # Retrying cannot help and would stall the partition: the consumer
                # dead-letters these turns instead.
                log.error("conversation_rejected", conversation=str(key), error=str(error)[:200])
                return ConversationOutcome(key=key, rejected=error, turns=tuple(turns))

    async def process_conversation(
        self, key: ConversationKey, turns: list[ConversationTurn]
    ) -> ConversationOutcome:
        snapshot = await self._read(key, turns)
        if not snapshot.turns.new:
            return ConversationOutcome(
                key=key,
                duplicates=len(snapshot.turns.duplicates),
                conflicts=tuple(snapshot.turns.conflicts),
            )
        to_extract = snapshot.pending + [as_turn_text(t) for t in snapshot.turns.new]
        known = snapshot.state or ConversationState(  # a new conversation
            tenant_id=key.tenant_id,
            account_id=key.account_id,
            contact_id=key.contact_id,
            contact_email=snapshot.turns.new[-1].contact_email,
        )
        result = await self._extract(to_extract, known)
        with tracing.span("write_transaction", turns=len(snapshot.turns.new)):
            written = await self._write_turns(key, snapshot, result, len(to_extract))
        conflicts = (*snapshot.turns.conflicts, *written.raced.conflicts)
        return ConversationOutcome(
            key=key,
            applied=written.applied,
            duplicates=len(turns) - written.applied - len(conflicts),
            version=written.version,
            extraction_status=result.status if written.version is not None else None,
            conflicts=conflicts,
        )

    async def _read(self, key: ConversationKey, turns: list[ConversationTurn]) -> _Snapshot:
        async with self.database.reading(key.tenant_id) as tx:
            stored = await tx.turns.find_stored_turns(key.tenant_id, [t.event_id for t in turns])
            compared = StoredTurns.compare(turns, stored)
            if not compared.new:
                return _Snapshot(state=None, turns=compared, pending=[])
            state, pending = await tx.states.read_snapshot(key, pending_limit=MAX_PENDING_TURNS)
        return _Snapshot(state=state, turns=compared, pending=pending)

    async def _extract(self, turns: list[TurnText], known: ConversationState) -> ExtractionResult:
        """The one extractor call, with no connection held: timed, counted and traced. The
        extractor sees what is known and what the next stage still lacks (so its questions
        aim at the gaps)."""
        gaps = gap_report(known, self.criteria)
        with tracing.span("extraction", turns=len(turns)) as span:
            started = time.perf_counter()
            result = await self.extractor.extract_signals(
                turns, known.qualification, known.deal_stage, next_stage=gaps
            )
            result = replace(result, seconds=time.perf_counter() - started)
            span.set_attribute("llm.model", result.model)
            span.set_attribute("extraction.status", result.status)
            span.set_attribute("llm.prompt_tokens", result.prompt_tokens)
            span.set_attribute("llm.completion_tokens", result.completion_tokens)
        metrics.observe_extraction(result, result.seconds)
        return result

    async def _write_turns(
        self, key: ConversationKey, snapshot: _Snapshot, result: ExtractionResult, extracted: int
    ) -> _Written:
        started = time.perf_counter()
        now = self.clock()
        extracted_at = now if result.status == "ok" else None
        new = snapshot.turns.new
        try:
            async with self.database.for_tenant(key.tenant_id) as tx:
                state = await tx.states.lock_or_insert_state(key, new[-1].contact_email)
                # One more statement, for stalled deals only: did the inactivity sweeper stall it?
                stalled_by_inactivity = (
                    state.deal_stage is DealStage.STALLED
                    and await tx.transitions.stall_source(key) == "inactivity"
                )
                inserted = await tx.turns.insert_turns(key, new, extracted_at=extracted_at)
                not_inserted = [t for t in new if t.event_id not in inserted]
                stored = (
                    await tx.turns.find_stored_turns(
                        key.tenant_id, [t.event_id for t in not_inserted]
                    )
                    if not_inserted
                    else {}
                )
                raced = StoredTurns.compare(not_inserted, stored, all_taken=True)
                if not inserted:
                    raise _NothingNew(raced)  # rolls back the (possibly just created) state row
                applied = [t for t in new if t.event_id in inserted]
                if extracted_at is not None:
                    pending_ids = [t.event_id for t in snapshot.pending]
                    await tx.turns.mark_turns_extracted(key.tenant_id, pending_ids, extracted_at)
                version = version_from_turns(
                    state,
                    applied,
                    result,
                    extracted_turns=extracted,
                    now=now,
                    criteria=self.criteria,
                    stalled_by_inactivity=stalled_by_inactivity,
                )
                await commit_version(tx, version, update_topic=self.update_topic)
        except _NothingNew as nothing:  # every new turn was stored by someone else meanwhile
            return _Written(applied=0, version=None, raced=nothing.raced)
        log_version(
            version,
            turns_applied=len(applied),
            extract_s=result.seconds,
            write_s=time.perf_counter() - started,
        )
        return _Written(applied=len(applied), version=version.state.version, raced=raced)

    async def reextract(self, key: ConversationKey, *, stored_turns: bool) -> ConversationOutcome:
        """Extract a stored conversation again and write the result as a new version, through
        the same commit path as new turns (`python -m worker reextract`, the pending sweeper).

        Reads its pending turns (whose extraction failed), or with `stored_turns` its latest
        stored turns (after a prompt or model change). A failed extraction writes nothing.
        """
        async with self.database.reading(key.tenant_id) as tx:
            state = await tx.states.read_state(key)
            read = tx.turns.recent_turns if stored_turns else tx.turns.pending_turns
            turns = await read(key, limit=MAX_PENDING_TURNS)
        if state is None or not turns:
            return ConversationOutcome(key=key)
        result = await self._extract(turns, state)
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
        async with self.database.for_tenant(key.tenant_id) as tx:
            state = await tx.states.lock_state(key)
            if state is None:
                raise ConversationNotFound(f"no conversation state for {key}")
            await tx.turns.mark_turns_extracted(key.tenant_id, [t.event_id for t in turns], now)
            # Merged against the locked state, not the one the extraction was shown.
            version = version_from_reextraction(
                state, result, extracted_turns=len(turns), now=now, criteria=self.criteria
            )
            await commit_version(tx, version, update_topic=self.update_topic)
        log_version(
            version,
            turns_applied=0,
            extract_s=result.seconds,
            write_s=time.perf_counter() - started,
        )
        return version.state.version


class _NothingNew(Exception):
    """Raised inside the write transaction to roll it back when no turn was new after all."""

    def __init__(self, raced: StoredTurns) -> None:
        super().__init__("no new turns")
        self.raced = raced
