"""The unit of work per conversation (DESIGN.md, data flow), and the fan-out of a batch.

Per conversation: a short read → one extraction with no connection held → one write
transaction under the state's row lock, through the one commit path. Redelivered turns are
recognised by event_id and cost neither an LLM call nor a count.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

import structlog

from schemas import (
    DEFAULT_MAX_TURN_CHARS,
    ConversationKey,
    ConversationState,
    ConversationTurn,
    DealStage,
    QualificationOverride,
)
from worker.errors import (
    ConversationErased,
    ConversationNotFound,
    DeferredExtractionBusy,
    PermanentError,
)
from worker.extract.factory import build_extractor
from worker.extract.port import CONTEXT_WINDOW_EXCEEDED, ExtractionResult, Extractor, TurnText
from worker.ops import metrics, tracing
from worker.qualify.commit import commit_version, log_version
from worker.qualify.criteria import DEFAULT_CRITERIA, StageCriteria
from worker.qualify.outcomes import (
    BatchOutcome,
    ConversationOutcome,
    DeadLetterDecision,
    Event,
    StoredLetter,
    StoredTurns,
    conflict_letter,
    group_by_conversation,
    refused_letter,
    steps,
)
from worker.qualify.overrides import apply_override
from worker.qualify.versioning import (
    NextVersion,
    gap_report,
    order_turns,
    version_from_reextraction,
    version_from_turns,
)
from worker.settings import Settings
from worker.store.deferred import Debounce, DeferredRead
from worker.store.erasure import conversation_hash
from worker.store.unit_of_work import Database, TenantTransaction

log = structlog.get_logger(__name__)

# Caps one prompt after a long LLM outage; the rest follow in later extractions.
MAX_PENDING_TURNS = 100
# Deferred turns one scheduled extraction takes (in prompts that fit); the rest stay due.
MAX_DEFERRED_TURNS = 500
# An override's flush of deferred turns is not renewed: a claim a crash left behind runs out
# after this, and a scheduler takes the turns over.
OVERRIDE_FLUSH_LEASE = timedelta(seconds=60)


def utc_now() -> datetime:
    return datetime.now(UTC)


def unreadable_letters(read: DeferredRead) -> list[StoredLetter]:
    """Deferred rows that no longer validate (MAX_TURN_CHARS lowered since): dead letters."""
    return [
        StoredLetter(
            event_id=u.event_id,
            stored=u.stored,
            decision=DeadLetterDecision("invalid_event", f"no longer valid: {u.detail}"),
        )
        for u in read.unreadable
    ]


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
    erasures: int = 0  # of the conversation's key, counted with the read


@dataclass(frozen=True, kw_only=True)
class _Written:
    applied: int
    version: int | None
    raced: StoredTurns  # new at our read, stored by someone else by our write
    state: ConversationState | None = None  # the version written


def build_service(settings: Settings, database: Database) -> QualificationService:
    """The one place a service is assembled: the app, `reextract`, `eval` and the tests."""
    return QualificationService(
        database=database,
        extractor=build_extractor(settings),
        update_topic=settings.update_topic,
        concurrency=settings.llm_concurrency,
        criteria=settings.stage_criteria,
        debounce=debounce_of(settings),
        deferred=DeferredTurnSettings(
            turn_topic=settings.turn_topic,
            dlq_topic=settings.dlq_topic,
            max_turn_chars=settings.max_turn_chars,
        ),
    )


def debounce_of(settings: Settings) -> Debounce | None:
    """None with EXTRACT_DEBOUNCE_MS=0: each batch extracts its turns at once."""
    if settings.extract_debounce_ms == 0:
        return None
    return Debounce(
        quiet=timedelta(milliseconds=settings.extract_debounce_ms),
        max_wait=timedelta(milliseconds=settings.extract_max_wait_ms),
    )


@dataclass(frozen=True, kw_only=True)
class DeferredTurnSettings:
    """How deferred turns are read back (as the consumer read them) and where those that
    cannot be applied any more are dead-lettered."""

    turn_topic: str = "conversation.turn"
    dlq_topic: str = "conversation.turn.dlq"
    max_turn_chars: int = DEFAULT_MAX_TURN_CHARS


@dataclass(kw_only=True)
class QualificationService:
    database: Database
    extractor: Extractor
    update_topic: str
    concurrency: int
    criteria: StageCriteria = DEFAULT_CRITERIA
    # With a debounce, a batch only stores its turns as deferred; the scheduler
    # (worker/qualify/debounce.py) extracts each conversation once it is due.
    debounce: Debounce | None = None
    deferred: DeferredTurnSettings = DeferredTurnSettings()
    clock: Callable[[], datetime] = utc_now
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)

    async def process_batch(self, events: Sequence[Event]) -> BatchOutcome:
        """Every conversation is attempted. A permanent failure (data the database refuses)
        is that conversation's outcome; any other failure is raised, so the consumer commits
        nothing and the batch comes again (what did commit is then skipped by event_id)."""
        groups, conflicts = group_by_conversation(events)
        results = await asyncio.gather(
            *(self._bounded(key, group) for key, group in groups.items()), return_exceptions=True
        )
        if failures := [r for r in results if isinstance(r, BaseException)]:
            log.warning("conversations_failed", failed=len(failures), conversations=len(groups))
            raise failures[0]
        outcomes = [r for r in results if isinstance(r, ConversationOutcome)]
        return BatchOutcome(conversations=outcomes, batch_conflicts=conflicts)

    async def _bounded(self, key: ConversationKey, events: list[Event]) -> ConversationOutcome:
        async with self._slots:
            try:
                with tracing.span(
                    "conversation", conversation_hash=conversation_hash(key), events=len(events)
                ):
                    return await self._conversation_steps(key, events)
            except PermanentError as error:
                # Retrying cannot help and would stall the partition: the consumer
                # dead-letters these events instead.
                log.error(
                    "conversation_rejected",
                    conversation_hash=conversation_hash(key),
                    error=str(error)[:200],
                )
                return ConversationOutcome(key=key, rejected=error, events=tuple(events))

    async def _conversation_steps(
        self, key: ConversationKey, events: list[Event]
    ) -> ConversationOutcome:
        """In conversation order: each run of turns is one extraction and one version, each
        override one version (overrides interleave with turns only when people correct a
        conversation while it goes on)."""
        outcome = ConversationOutcome(key=key)
        planned = steps(events)
        for index, step in enumerate(planned):
            if isinstance(step, QualificationOverride):
                if index == 0:  # else the turns or the override before it flushed them
                    outcome += await self._extract_with_deferred(key, [])
                outcome += await self.apply_override(key, step)
            elif any(isinstance(later, QualificationOverride) for later in planned[index:]):
                # An override applies to what was said before it, deferred turns included
                # (whatever EXTRACT_DEBOUNCE_MS says now): extract that first.
                outcome += await self._extract_with_deferred(key, step)
            elif self.debounce is None:
                outcome += await self.process_conversation(key, step)
            else:
                outcome += await self.defer_turns(key, step)
        return outcome

    async def defer_turns(
        self, key: ConversationKey, turns: list[ConversationTurn]
    ) -> ConversationOutcome:
        """Debounced: the new turns wait in tenant.deferred_turns for the scheduler; no LLM
        call, no version. A turn stored or deferred before is a duplicate (or a conflict)."""
        ids = [t.event_id for t in turns]
        async with self.database.reading(key.tenant_id) as tx:
            compared = StoredTurns.compare(turns, await self._taken(tx, ids))
        outcome = ConversationOutcome(
            key=key, duplicates=len(compared.duplicates), conflicts=tuple(compared.conflicts)
        )
        if not compared.new:
            return outcome
        async with self.database.for_tenant(key.tenant_id) as tx:
            inserted = await tx.deferred.defer(key, compared.new, now=self.clock())
            others = [t for t in compared.new if t.event_id not in inserted]
            raced = StoredTurns.none()
            if others:  # deferred meanwhile by a redelivery, or an id taken elsewhere
                taken = await self._taken(tx, [t.event_id for t in others])
                raced = StoredTurns.compare(others, taken, all_taken=True)
        metrics.TURNS_DEFERRED.inc(len(inserted))
        return outcome + ConversationOutcome(
            key=key,
            deferred=len(inserted),
            duplicates=len(raced.duplicates),
            conflicts=tuple(raced.conflicts),
        )

    @staticmethod
    async def _taken(tx: TenantTransaction, event_ids: list[UUID]) -> dict[UUID, str]:
        """Fingerprints of the ids this tenant has stored or deferred."""
        stored = await tx.turns.find_stored_turns(tx.tenant_id, event_ids)
        return stored | await tx.deferred.find_deferred_turns(tx.tenant_id, event_ids)

    async def extract_deferred(self, key: ConversationKey, *, claim: UUID) -> ConversationOutcome:
        """The scheduler's unit of work for a due conversation it claimed: its deferred turns
        (and any pending ones) in one extraction per prompt that fits, one version each,
        through the same write path as a batch; then the deferred rows go and the claim ends.
        A crash before the release leaves the rows; the next claimant finds them stored
        (duplicates by event_id) and only releases. Rows that cannot be applied any more
        (unreadable, refused by PostgreSQL, conflicts) are dead-lettered from their stored form
        in the release's transaction."""
        read = await self._read_deferred(key)
        outcome, letters = ConversationOutcome(key=key), unreadable_letters(read)
        if read.turns:
            async with self._slots:
                outcome, refused = await self._extract_stored_later(key, read.turns)
            letters += refused
        await self._release(key, claim=claim, read=read, letters=letters)
        return outcome

    async def _read_deferred(self, key: ConversationKey) -> DeferredRead:
        async with self.database.reading(key.tenant_id) as tx:
            return await tx.deferred.read(
                key, limit=MAX_DEFERRED_TURNS, max_turn_chars=self.deferred.max_turn_chars
            )

    async def _release(
        self,
        key: ConversationKey,
        *,
        claim: UUID,
        read: DeferredRead,
        letters: Sequence[StoredLetter],
    ) -> None:
        """Ends the claim: the rows read go (dead letters first, in the same transaction)."""
        now = self.clock()
        async with self.database.for_tenant(key.tenant_id) as tx:
            for letter in letters:
                await tx.outbox.insert_dead_letter(
                    self.deferred.dlq_topic,
                    letter.outbox_id,
                    key.tenant_id,
                    str(key),
                    letter.dead_letter(topic=self.deferred.turn_topic, key=key, now=now),
                )
            await tx.deferred.release(key, claim=claim, extracted=read.event_ids)
        if letters:
            metrics.DEFERRED_DEAD_LETTERS.inc(len(letters))
            log.warning(
                "deferred_turns_dead_lettered",
                conversation_hash=conversation_hash(key),
                reasons=sorted({letter.decision.reason for letter in letters}),
                turns=len(letters),
            )

    async def _extract_with_deferred(
        self, key: ConversationKey, turns: list[ConversationTurn]
    ) -> ConversationOutcome:
        """Before an override: the conversation's deferred turns, with the batch's turns that
        precede the override, at once, under a claim of the scheduler's kind (so no scheduler
        extracts them meanwhile). A scheduler's claim whose lease still runs makes the batch
        come again later (DeferredExtractionBusy): the override must not overtake them."""
        claim = uuid.uuid4()
        async with self.database.for_tenant(key.tenant_id) as tx:
            held = await tx.deferred.claim(key, claim=claim, lease=OVERRIDE_FLUSH_LEASE)
        if held == "busy":
            raise DeferredExtractionBusy("deferred turns of the conversation are being extracted")
        if held == "none":
            return (
                await self.process_conversation(key, turns)
                if turns
                else ConversationOutcome(key=key)
            )
        read = await self._read_deferred(key)
        sent = {t.event_id for t in turns}
        earlier = [t for t in read.turns if t.event_id not in sent]
        try:
            outcome = await self.process_conversation(key, order_turns([*earlier, *turns]))
        except Exception:
            # The scheduler takes the deferred turns over at once (or when the lease ends).
            with contextlib.suppress(Exception):
                await self._release(key, claim=claim, read=DeferredRead(), letters=[])
            raise
        letters = unreadable_letters(read) + [
            conflict_letter(t)
            for t in outcome.conflicts
            if isinstance(t, ConversationTurn) and t.event_id not in sent
        ]
        await self._release(key, claim=claim, read=read, letters=letters)
        # The batch's own turns are what the consumer counts as duplicates and conflicts.
        conflicts = tuple(t for t in outcome.conflicts if t.event_id in sent)
        duplicates = len(turns) - (outcome.applied - len(earlier)) - len(conflicts)
        return replace(outcome, duplicates=max(duplicates, 0), conflicts=conflicts)

    async def _extract_stored_later(
        self, key: ConversationKey, deferred: list[ConversationTurn]
    ) -> tuple[ConversationOutcome, list[StoredLetter]]:
        """Their offsets are committed, so what cannot be applied is dead-lettered here: the
        turns PostgreSQL refuses on their own and conflicts; the rest are extracted."""
        with tracing.span(
            "deferred_conversation", conversation_hash=conversation_hash(key), turns=len(deferred)
        ):
            try:
                outcome = await self.process_conversation(key, order_turns(deferred))
            except PermanentError as error:
                outcome, letters = await self._without_refused(key, deferred, error)
            else:
                letters = []
        letters += [
            conflict_letter(t) for t in outcome.conflicts if isinstance(t, ConversationTurn)
        ]
        return replace(outcome, conflicts=()), letters

    async def _without_refused(
        self, key: ConversationKey, deferred: list[ConversationTurn], error: PermanentError
    ) -> tuple[ConversationOutcome, list[StoredLetter]]:
        """PostgreSQL refused the conversation's deferred turns: those it refuses on their own
        are dead-lettered and the others extracted (all of them dead-lettered when none is
        refused alone, or when the others are refused again)."""
        async with self.database.for_tenant(key.tenant_id) as tx:
            refused = await tx.turns.refused_turns(key, deferred)
        rest = [t for t in deferred if t not in refused] if refused else []
        letters = [refused_letter(t, error) for t in (refused or deferred)]
        outcome = ConversationOutcome(key=key, rejected=error)
        if rest:
            try:
                outcome += await self.process_conversation(key, order_turns(rest))
            except PermanentError as again:
                letters += [refused_letter(t, again) for t in rest]
        log.error(
            "deferred_turns_rejected",
            conversation_hash=conversation_hash(key),
            refused=len(letters),
            error=str(error)[:200],
        )
        return replace(outcome, rejected=error), letters

    async def apply_override(
        self, key: ConversationKey, override: QualificationOverride
    ) -> ConversationOutcome:
        """A person's correction, once by event_id, as one version under the row lock."""
        now = self.clock()
        async with self.database.for_tenant(key.tenant_id) as tx:
            state = await tx.states.lock_state(key)
            if state is None:
                return ConversationOutcome(key=key, unknown=(override,))
            version = apply_override(state, override, now=now).as_next_version(state, self.criteria)
            if not await tx.overrides.insert_override(key, override, version=version.state.version):
                stored = await tx.overrides.find_stored_overrides(
                    key.tenant_id, [override.event_id]
                )
                if stored.get(override.event_id) == override.fingerprint():
                    return ConversationOutcome(key=key, duplicates=1)
                return ConversationOutcome(key=key, conflicts=(override,))
            await commit_version(tx, version, update_topic=self.update_topic)
        metrics.OVERRIDES_APPLIED.labels(actor_type=override.actor.type).inc()
        log_version(version, turns_applied=0, extract_s=0.0, write_s=0.0)
        return ConversationOutcome(key=key, version=version.state.version, overrides_applied=1)

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
        new = snapshot.turns.new
        known = snapshot.state or ConversationState(  # a new conversation
            tenant_id=key.tenant_id,
            account_id=key.account_id,
            contact_id=key.contact_id,
            contact_email=new[-1].contact_email,
        )
        try:
            outcome = await self._extract_and_write(
                key, new, snapshot.pending, known, erasures=snapshot.erasures
            )
        except ConversationErased:
            log.info("extraction_discarded_after_erasure", conversation_hash=conversation_hash(key))
            return ConversationOutcome(key=key, erased=len(new))
        outcome += ConversationOutcome(key=key, conflicts=tuple(snapshot.turns.conflicts))
        duplicates = len(turns) - outcome.applied - len(outcome.conflicts)
        return replace(outcome, duplicates=duplicates)

    async def _extract_and_write(
        self,
        key: ConversationKey,
        new: list[ConversationTurn],
        pending: list[TurnText],
        known: ConversationState,
        *,
        erasures: int,
    ) -> ConversationOutcome:
        """Pending then new turns, in prompts that fit the model (almost always one): one
        extraction and one version each. Raises ConversationErased when the conversation was
        erased since the read (`erasures` counted before it)."""
        outcome = ConversationOutcome(key=key)
        to_extract = pending + [as_turn_text(t) for t in new]
        queue = deque((chunk, False) for chunk in self._plan(to_extract, known, shrink=1))
        while queue:
            chunk, replanned = queue.popleft()
            result = await self._extract(chunk, known)
            if result.error == CONTEXT_WINDOW_EXCEEDED and not replanned:
                # The model's window is smaller than planned for: plan this chunk again for
                # half the budget rather than send the same prompt again.
                smaller = self._plan(chunk, known, shrink=2)
                queue.extendleft((c, True) for c in reversed(smaller))
                continue
            ids = {t.event_id for t in chunk}
            chunk_new = [t for t in new if t.event_id in ids]
            chunk_pending = [t for t in pending if t.event_id in ids]
            with tracing.span("write_transaction", turns=len(ids)):
                written = await self._write_turns(
                    key, chunk_new, chunk_pending, result, erasures=erasures
                )
            known = written.state or known
            outcome += ConversationOutcome(
                key=key,
                applied=written.applied,
                version=written.version,
                extraction_status=result.status if written.version is not None else None,
                conflicts=tuple(written.raced.conflicts),
            )
        return outcome

    def _plan(
        self, turns: list[TurnText], known: ConversationState, *, shrink: int
    ) -> list[list[TurnText]]:
        """Oldest first, in prompts that fit the model: one extraction (one version) each."""
        return self.extractor.plan_chunks(
            turns,
            known.qualification,
            known.deal_stage,
            next_stage=gap_report(known, self.criteria),
            shrink=shrink,
        )

    async def _read(self, key: ConversationKey, turns: list[ConversationTurn]) -> _Snapshot:
        async with self.database.reading(key.tenant_id) as tx:
            stored = await tx.turns.find_stored_turns(key.tenant_id, [t.event_id for t in turns])
            compared = StoredTurns.compare(turns, stored)
            if not compared.new:
                return _Snapshot(state=None, turns=compared, pending=[])
            read = await tx.states.read_snapshot(key, pending_limit=MAX_PENDING_TURNS)
        return _Snapshot(
            state=read.state, turns=compared, pending=read.pending, erasures=read.erasures
        )

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
        started = time.perf_counter()
        if not new and result.status != "ok":
            return _Written(applied=0, version=None, raced=StoredTurns.none())
        try:
            async with self.database.for_tenant(key.tenant_id) as tx:
                written, version = await self._turns_version(
                    tx, key, new, pending, result, erasures=erasures
                )
        except _NothingNew as nothing:  # every new turn was stored by someone else meanwhile
            return _Written(applied=0, version=None, raced=nothing.raced)
        log_version(
            version,
            turns_applied=written.applied,
            extract_s=result.seconds,
            write_s=time.perf_counter() - started,
        )
        return written

    async def _turns_version(
        self,
        tx: TenantTransaction,
        key: ConversationKey,
        new: list[ConversationTurn],
        pending: list[TurnText],
        result: ExtractionResult,
        *,
        erasures: int,
    ) -> tuple[_Written, NextVersion]:
        """Inside the write transaction, under the state's row lock."""
        await self._refuse_if_erased(tx, key, erasures)
        now = self.clock()
        extracted_at = now if result.status == "ok" else None
        if new:
            state = await tx.states.lock_or_insert_state(key, new[-1].contact_email)
        else:
            state = await self._locked(tx, key)
        inserted = await tx.turns.insert_turns(key, new, extracted_at=extracted_at)
        raced = await self._raced(tx, key, [t for t in new if t.event_id not in inserted])
        if new and not inserted:
            raise _NothingNew(raced)  # rolls back the (possibly just created) state row
        applied = [t for t in new if t.event_id in inserted]
        if extracted_at is not None:
            pending_ids = [t.event_id for t in pending]
            await tx.turns.mark_turns_extracted(key.tenant_id, pending_ids, extracted_at)
        version = version_from_turns(
            state,
            applied,
            result,
            extracted_turns=len(new) + len(pending),
            now=now,
            criteria=self.criteria,
            stalled_by_inactivity=bool(applied) and await self._stalled_by_inactivity(tx, state),
        )
        stored = await commit_version(tx, version, update_topic=self.update_topic)
        written = _Written(applied=len(applied), version=stored.version, raced=raced, state=stored)
        return written, version

    @staticmethod
    async def _refuse_if_erased(tx: TenantTransaction, key: ConversationKey, erasures: int) -> None:
        """Before the row lock: a `forget` since the extraction's read (another erasure count)
        means what it read is erased and must not be written back, in a new row or not."""
        if await tx.erasures.lock_for_writing(key) != erasures:
            raise ConversationErased(
                f"conversation {conversation_hash(key)} erased during its extraction"
            )

    @staticmethod
    async def _stalled_by_inactivity(tx: TenantTransaction, state: ConversationState) -> bool:
        """One more statement, for stalled deals only: did the inactivity sweeper stall it?
        Then a new turn resumes it before the extraction's proposal is judged."""
        if state.deal_stage is not DealStage.STALLED:
            return False
        key = ConversationKey(state.tenant_id, state.account_id, state.contact_id)
        return await tx.transitions.stall_source(key) == "inactivity"

    @staticmethod
    async def _locked(tx: TenantTransaction, key: ConversationKey) -> ConversationState:
        state = await tx.states.lock_state(key)
        if state is None:
            raise ConversationNotFound(f"no conversation state for {conversation_hash(key)}")
        return state

    @staticmethod
    async def _raced(
        tx: TenantTransaction, key: ConversationKey, not_inserted: list[ConversationTurn]
    ) -> StoredTurns:
        """New at our read but not inserted: a concurrent redelivery (a duplicate) or an
        event_id another turn took, perhaps in another tenant (a conflict)."""
        if not not_inserted:
            return StoredTurns.none()
        stored = await tx.turns.find_stored_turns(key.tenant_id, [t.event_id for t in not_inserted])
        return StoredTurns.compare(not_inserted, stored, all_taken=True)

    async def reextract(self, key: ConversationKey, *, stored_turns: bool) -> ConversationOutcome:
        """Extract a stored conversation again and write the result as new versions, through
        the same commit path as new turns (`python -m worker reextract`, the pending sweeper).

        Reads its pending turns (whose extraction failed), or with `stored_turns` its latest
        stored turns (after a prompt or model change), in prompts that fit the model (one
        version each). A failed extraction writes nothing and ends the round.
        """
        async with self.database.reading(key.tenant_id) as tx:
            erasures = await tx.erasures.erasures(key)  # before the read it guards
            state = await tx.states.read_state(key)
            read = tx.turns.recent_turns if stored_turns else tx.turns.pending_turns
            turns = await read(key, limit=MAX_PENDING_TURNS)
        if state is None or not turns:
            return ConversationOutcome(key=key)
        outcome = ConversationOutcome(key=key)
        for chunk in self._plan(turns, state, shrink=1):
            result = await self._extract(chunk, state)
            if result.status != "ok":
                return outcome + ConversationOutcome(key=key, extraction_status=result.status)
            with tracing.span("write_transaction", turns=0):
                try:
                    state = await self._write_reextraction(key, chunk, result, erasures=erasures)
                except ConversationErased:
                    log.info(
                        "extraction_discarded_after_erasure",
                        conversation_hash=conversation_hash(key),
                    )
                    return outcome
            outcome += ConversationOutcome(
                key=key, version=state.version, extraction_status=result.status
            )
        return outcome

    async def _write_reextraction(
        self,
        key: ConversationKey,
        turns: list[TurnText],
        result: ExtractionResult,
        *,
        erasures: int,
    ) -> ConversationState:
        started = time.perf_counter()
        now = self.clock()
        async with self.database.for_tenant(key.tenant_id) as tx:
            await self._refuse_if_erased(tx, key, erasures)
            state = await self._locked(tx, key)
            await tx.turns.mark_turns_extracted(key.tenant_id, [t.event_id for t in turns], now)
            # Merged against the locked state, not the one the extraction was shown.
            version = version_from_reextraction(
                state, result, extracted_turns=len(turns), now=now, criteria=self.criteria
            )
            stored = await commit_version(tx, version, update_topic=self.update_topic)
        log_version(
            version,
            turns_applied=0,
            extract_s=result.seconds,
            write_s=time.perf_counter() - started,
        )
        return stored


class _NothingNew(Exception):
    """Raised inside the write transaction to roll it back when no turn was new after all."""

    def __init__(self, raced: StoredTurns) -> None:
        super().__init__("no new turns")
        self.raced = raced
