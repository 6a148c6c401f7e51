"""The turn path (DESIGN.md, data flow): new turns of one conversation become versions.

A short read → one extraction per prompt that fits, with no connection held → one write
transaction per extraction under the state's row lock, through the one commit path. Redelivered
turns are recognised by event_id and cost neither an LLM call nor a count.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from schemas import ConversationKey, ConversationState, ConversationTurn, DealStage
from worker.errors import ConversationErased
from worker.extract.port import CONTEXT_WINDOW_EXCEEDED, ExtractionResult, TurnText
from worker.ops import tracing
from worker.ops.clock import Clock
from worker.qualify.commit import commit_under_lock, locked_state
from worker.qualify.criteria import StageCriteria
from worker.qualify.extraction import Extraction, as_turn_text
from worker.qualify.outcomes import ConversationOutcome, StoredTurns
from worker.qualify.versioning import NextVersion, version_from_turns
from worker.store.database import Database
from worker.store.erasure import conversation_hash
from worker.store.unit_of_work import TenantTransaction

log = structlog.get_logger(__name__)

# Caps one prompt after a long LLM outage; the rest follow in later extractions.
MAX_PENDING_TURNS = 100


@dataclass(frozen=True, kw_only=True)
class _Snapshot:
    """What the short read saw; the write transaction re-reads the state under its lock."""

    state: ConversationState | None
    turns: StoredTurns
    pending: list[TurnText]
    erasures: int = 0  # of the conversation's key, counted with the read


@dataclass(frozen=True, kw_only=True)
class _Written:
    applied: int
    version: int | None
    raced: StoredTurns  # new at our read, stored by someone else by our write
    state: ConversationState | None = None  # the version written


def _seen(key: ConversationKey, turns: StoredTurns) -> ConversationOutcome:
    """The turns found stored (by their event_id) where they were counted: duplicates and
    conflicts, each once."""
    return ConversationOutcome(
        key=key, redelivered=tuple(turns.duplicates), conflicts=tuple(turns.conflicts)
    )


class _NothingNew(Exception):
    """Raised inside the write transaction to roll it back when no turn was new after all."""

    def __init__(self, raced: StoredTurns) -> None:
        super().__init__("no new turns")
        self.raced = raced


@dataclass(frozen=True, kw_only=True)
class TurnPath:
    database: Database
    extraction: Extraction
    criteria: StageCriteria
    update_topic: str
    clock: Clock

    async def process(
        self, key: ConversationKey, turns: list[ConversationTurn]
    ) -> ConversationOutcome:
        """The turns found stored are counted (duplicates, conflicts); the new ones are
        extracted with the conversation's pending turns and written."""
        snapshot = await self._read(key, turns)
        if not snapshot.turns.new:
            return _seen(key, snapshot.turns)
        new = snapshot.turns.new
        state = snapshot.state or ConversationState(  # a new conversation
            tenant_id=key.tenant_id,
            account_id=key.account_id,
            contact_id=key.contact_id,
            contact_email=new[-1].contact_email,
        )
        try:
            outcome = await self._extract_and_write(
                key, new, snapshot.pending, state, erasures=snapshot.erasures
            )
        except ConversationErased:
            log.info("extraction_discarded_after_erasure", conversation_hash=conversation_hash(key))
            return ConversationOutcome(key=key, erased=len(new))
        return _seen(key, snapshot.turns) + outcome

    async def _extract_and_write(
        self,
        key: ConversationKey,
        new: list[ConversationTurn],
        pending: list[TurnText],
        state: ConversationState,
        *,
        erasures: int,
    ) -> ConversationOutcome:
        """Pending then new turns, in prompts that fit the model (almost always one): one
        extraction and one version each. Raises ConversationErased when the conversation was
        erased since the read (`erasures` counted before it)."""
        outcome, known = ConversationOutcome(key=key), self.extraction.known(state)
        to_extract = pending + [as_turn_text(t) for t in new]
        queue = deque((chunk, False) for chunk in self.extraction.plan(to_extract, known, shrink=1))
        while queue:
            chunk, replanned = queue.popleft()
            result = await self.extraction.extract(chunk, known)
            if result.error == CONTEXT_WINDOW_EXCEEDED and not replanned:
                # The model's window is smaller than planned for: plan this chunk again for
                # half the budget rather than send the same prompt again.
                smaller = self.extraction.plan(chunk, known, shrink=2)
                queue.extendleft((c, True) for c in reversed(smaller))
                continue
            ids = {t.event_id for t in chunk}
            chunk_new = [t for t in new if t.event_id in ids]
            chunk_pending = [t for t in pending if t.event_id in ids]
            with tracing.span("write_transaction", turns=len(ids)):
                written = await self._write_turns(
                    key, chunk_new, chunk_pending, result, erasures=erasures
                )
            if written.state is not None:
                known = self.extraction.known(written.state)
            outcome += _seen(key, written.raced) + ConversationOutcome(
                key=key,
                applied=written.applied,
                version=written.version,
                extraction_status=result.status if written.version is not None else None,
            )
        return outcome

    async def _read(self, key: ConversationKey, turns: list[ConversationTurn]) -> _Snapshot:
        async with self.database.reading(key.tenant_id) as tx:
            stored = await tx.turns.find_stored_turns([t.event_id for t in turns])
            compared = StoredTurns.compare(turns, stored)
            if not compared.new:
                return _Snapshot(state=None, turns=compared, pending=[])
            read = await tx.states.read_snapshot(key, pending_limit=MAX_PENDING_TURNS)
        return _Snapshot(
            state=read.state, turns=compared, pending=read.pending, erasures=read.erasures
        )

    async def _write_turns(
        self,
        key: ConversationKey,
        new: list[ConversationTurn],
        pending: list[TurnText],
        result: ExtractionResult,
        *,
        erasures: int,
    ) -> _Written:
        """One version: `new` turns stored and counted, `pending` ones marked extracted when
        the extraction worked. Nothing is written when no turn was new after all, or when only
        pending turns were read and their extraction failed again."""
        if not new and result.status != "ok":
            return _Written(applied=0, version=None, raced=StoredTurns.none())
        write = _TurnWrite(
            key=key,
            new=new,
            pending=pending,
            result=result,
            now=self.clock(),
            criteria=self.criteria,
        )
        try:
            stored = await commit_under_lock(
                self.database,
                key,
                write.decide,
                update_topic=self.update_topic,
                lock=write.lock,
                erasures=erasures,
                extract_s=result.seconds,
            )
        except _NothingNew as nothing:  # every new turn was stored by someone else meanwhile
            return _Written(applied=0, version=None, raced=nothing.raced)
        assert stored is not None  # decide always makes a version
        return _Written(
            applied=write.applied, version=stored.version, raced=write.raced, state=stored
        )


@dataclass(kw_only=True)
class _TurnWrite:
    """What one write transaction of the turn path does under the row lock, and what it saw."""

    key: ConversationKey
    new: list[ConversationTurn]
    pending: list[TurnText]
    result: ExtractionResult
    now: datetime
    criteria: StageCriteria
    applied: int = 0
    raced: StoredTurns = field(default_factory=StoredTurns.none)

    async def lock(self, tx: TenantTransaction, key: ConversationKey) -> ConversationState:
        """New turns may start the conversation: its row is created if need be."""
        if self.new:
            return await tx.states.lock_or_insert_state(key, self.new[-1].contact_email)
        return await locked_state(tx, key)

    async def decide(self, tx: TenantTransaction, state: ConversationState | None) -> NextVersion:
        assert state is not None  # `lock` creates it or raises
        key, new = self.key, self.new
        extracted_at = self.now if self.result.status == "ok" else None
        inserted = await tx.turns.insert_turns(key, new, extracted_at=extracted_at)
        self.raced = await _raced(tx, key, [t for t in new if t.event_id not in inserted])
        if new and not inserted:
            raise _NothingNew(self.raced)  # rolls back the (possibly just created) state row
        applied = [t for t in new if t.event_id in inserted]
        self.applied = len(applied)
        if extracted_at is not None:
            pending_ids = [t.event_id for t in self.pending]
            await tx.turns.mark_turns_extracted(pending_ids, extracted_at)
        return version_from_turns(
            state,
            applied,
            self.result,
            extracted_turns=len(new) + len(self.pending),
            now=self.now,
            criteria=self.criteria,
            stalled_by_inactivity=bool(applied) and await _stalled_by_inactivity(tx, state),
        )


async def _stalled_by_inactivity(tx: TenantTransaction, state: ConversationState) -> bool:
    """One more statement, for stalled deals only: did the inactivity sweeper stall it?
    Then a new turn resumes it before the extraction's proposal is judged."""
    if state.deal_stage is not DealStage.STALLED:
        return False
    key = ConversationKey(state.tenant_id, state.account_id, state.contact_id)
    return await tx.transitions.stall_source(key) == "inactivity"


async def _raced(
    tx: TenantTransaction, key: ConversationKey, not_inserted: list[ConversationTurn]
) -> StoredTurns:
    """New at our read but not inserted: a concurrent redelivery (a duplicate) or an
    event_id another turn took, perhaps in another tenant (a conflict)."""
    if not not_inserted:
        return StoredTurns.none()
    stored = await tx.turns.find_stored_turns([t.event_id for t in not_inserted])
    return StoredTurns.compare(not_inserted, stored, all_taken=True)
