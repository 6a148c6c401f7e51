"""Deferred extraction (EXTRACT_DEBOUNCE_MS > 0), the service's side: a batch defers its turns
in tenant.deferred_turns; the scheduler (worker/qualify/deferred_extraction_scheduler.py)
extracts each conversation once it is due; an override first flushes what was deferred before
it. Each extraction goes through the turn path."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from uuid import UUID

import structlog

from schemas import DEFAULT_MAX_TURN_CHARS, ConversationKey, ConversationTurn
from worker.errors import DeferredExtractionBusy, PermanentError
from worker.ops import metrics, tracing
from worker.ops.clock import Clock
from worker.qualify.outcomes import (
    ConversationOutcome,
    DeadLetterDecision,
    StoredLetter,
    StoredTurns,
    conflict_letter,
    refused_letter,
)
from worker.qualify.versioning import order_turns
from worker.store.database import Database
from worker.store.deferred_extraction import DeferredRead
from worker.store.erasure import conversation_hash
from worker.store.unit_of_work import TenantTransaction

log = structlog.get_logger(__name__)

# Deferred turns one scheduled extraction takes (in prompts that fit); the rest stay due.
MAX_DEFERRED_TURNS = 500
# An override's flush of deferred turns is not renewed: a claim a crash left behind runs out
# after this, and a scheduler takes the turns over.
OVERRIDE_FLUSH_LEASE = timedelta(seconds=60)

ProcessTurns = Callable[[ConversationKey, list[ConversationTurn]], Awaitable[ConversationOutcome]]


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


@dataclass(frozen=True, kw_only=True)
class DeferredTurnSettings:
    """How deferred turns are read back (as the consumer read them) and where those that
    cannot be applied any more are dead-lettered."""

    turn_topic: str = "conversation.turn"
    dlq_topic: str = "conversation.turn.dlq"
    max_turn_chars: int = DEFAULT_MAX_TURN_CHARS


@dataclass(frozen=True, kw_only=True)
class DeferredExtraction:
    database: Database
    settings: DeferredTurnSettings
    clock: Clock
    slots: asyncio.Semaphore  # the service's bound on conversations extracted at once
    process: ProcessTurns  # the turn path

    async def defer(
        self, key: ConversationKey, turns: list[ConversationTurn]
    ) -> ConversationOutcome:
        """Debounced: the new turns wait in tenant.deferred_turns for the scheduler; no LLM
        call, no version. A turn stored or deferred before is a duplicate (or a conflict)."""
        ids = [t.event_id for t in turns]
        async with self.database.reading(key.tenant_id) as tx:
            compared = StoredTurns.compare(turns, await self._taken(tx, ids))
        outcome = ConversationOutcome(
            key=key, redelivered=tuple(compared.duplicates), conflicts=tuple(compared.conflicts)
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
            redelivered=tuple(raced.duplicates),
            conflicts=tuple(raced.conflicts),
        )

    @staticmethod
    async def _taken(tx: TenantTransaction, event_ids: list[UUID]) -> dict[UUID, str]:
        """Fingerprints of the ids this tenant has stored or deferred."""
        stored = await tx.turns.find_stored_turns(event_ids)
        return stored | await tx.deferred.find_deferred_turns(event_ids)

    async def extract(self, key: ConversationKey, *, claim: UUID) -> ConversationOutcome:
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
            async with self.slots:
                outcome, refused = await self._extract_stored_later(key, read.turns)
            letters += refused
        await self._release(key, claim=claim, read=read, letters=letters)
        return outcome

    async def _read_deferred(self, key: ConversationKey) -> DeferredRead:
        async with self.database.reading(key.tenant_id) as tx:
            return await tx.deferred.read(
                key, limit=MAX_DEFERRED_TURNS, max_turn_chars=self.settings.max_turn_chars
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
                    self.settings.dlq_topic,
                    letter.outbox_id,
                    key.tenant_id,
                    str(key),
                    letter.dead_letter(topic=self.settings.turn_topic, key=key, now=now),
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

    async def flush_before_override(
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
            return await self.process(key, turns) if turns else ConversationOutcome(key=key)
        read = await self._read_deferred(key)
        sent = {t.event_id for t in turns}
        earlier = [t for t in read.turns if t.event_id not in sent]
        try:
            outcome = await self.process(key, order_turns([*earlier, *turns]))
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
        own = [t for t in outcome.redelivered if t.event_id in sent]
        conflicts = tuple(t for t in outcome.conflicts if t.event_id in sent)
        return replace(outcome, redelivered=tuple(own), conflicts=conflicts)

    async def _extract_stored_later(
        self, key: ConversationKey, deferred: list[ConversationTurn]
    ) -> tuple[ConversationOutcome, list[StoredLetter]]:
        """Their offsets are committed, so what cannot be applied is dead-lettered here: the
        turns PostgreSQL refuses on their own and conflicts; the rest are extracted."""
        with tracing.span(
            "deferred_conversation", conversation_hash=conversation_hash(key), turns=len(deferred)
        ):
            try:
                outcome = await self.process(key, order_turns(deferred))
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
                outcome += await self.process(key, order_turns(rest))
            except PermanentError as again:
                letters += [refused_letter(t, again) for t in rest]
        log.error(
            "deferred_turns_rejected",
            conversation_hash=conversation_hash(key),
            refused=len(letters),
            error=str(error)[:200],
        )
        return replace(outcome, rejected=error), letters
