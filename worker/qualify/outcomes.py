"""What processing a batch decided: per conversation what was applied, and per event (turn or
override) which ones must go to the dead-letter topic and why. Pure.

An event is named by `(event_id, fingerprint)`: the same id with other content is another event
(a conflict), the same id with the same content is a redelivery of this one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid5

import orjson

from schemas import ConversationKey, ConversationTurn, DeadLetter, QualificationOverride
from worker.errors import PermanentError
from worker.qualify.versioning import order_turns

Event = ConversationTurn | QualificationOverride
EventRef = tuple[UUID, str]  # (event_id, fingerprint)
CONFLICT_DETAIL = "event_id already used by a turn with other content; the first one wins"
OVERRIDE_CONFLICT_DETAIL = (
    "event_id already used by an override with other content; the first one wins"
)
UNKNOWN_CONVERSATION_DETAIL = (
    "no such conversation: an override applies to a conversation the worker has a turn of"
)

# The outbox ids of dead letters written from a deferred turn's stored form: one per turn.
STORED_DEAD_LETTER_NAMESPACE = UUID("0b6c1f0e-7d4e-5a53-8c2f-3e1d9a4b7c60")
# A deferred turn's offset was committed long before: its position is no longer known.
UNKNOWN_POSITION = -1


def event_ref(event: Event) -> EventRef:
    return event.event_id, event.fingerprint()


@dataclass(frozen=True, slots=True)
class DeadLetterDecision:
    reason: Literal["conflict", "invalid_event", "unknown_conversation"]
    detail: str


@dataclass(frozen=True, kw_only=True)
class StoredLetter:
    """A deferred turn to dead-letter from its stored form: its offset is committed, so the
    consumer can no longer dead-letter the record itself."""

    event_id: UUID
    stored: Mapping[str, Any]  # the turn as tenant.deferred_turns holds it
    decision: DeadLetterDecision

    @classmethod
    def of(cls, turn: ConversationTurn, decision: DeadLetterDecision) -> StoredLetter:
        return cls(event_id=turn.event_id, stored=turn.model_dump(mode="json"), decision=decision)

    @property
    def outbox_id(self) -> UUID:
        return uuid5(STORED_DEAD_LETTER_NAMESPACE, str(self.event_id))

    def dead_letter(self, *, topic: str, key: ConversationKey, now: datetime) -> DeadLetter:
        """Partition and offset are -1: the record's position is no longer known."""
        return DeadLetter(
            error=self.decision.reason,
            detail=f"{self.decision.detail} (a deferred turn, from its stored form)",
            topic=topic,
            partition=UNKNOWN_POSITION,
            offset=UNKNOWN_POSITION,
            key=str(key),
            value=orjson.dumps(self.stored).decode(),
            failed_at=now,
        )


def conflict_letter(turn: ConversationTurn) -> StoredLetter:
    return StoredLetter.of(turn, DeadLetterDecision("conflict", CONFLICT_DETAIL))


def refused_letter(turn: ConversationTurn, error: PermanentError) -> StoredLetter:
    return StoredLetter.of(turn, DeadLetterDecision("invalid_event", refused_detail(error)))


def refused_detail(error: PermanentError) -> str:
    return f"rejected by PostgreSQL: {error}"


@dataclass(frozen=True, kw_only=True)
class StoredTurns:
    """How the turns of one conversation compare with what is stored: decided once per turn."""

    new: list[ConversationTurn]
    duplicates: list[ConversationTurn]  # same id, same content: a redelivery
    conflicts: list[ConversationTurn]  # same id, other content: the stored one won

    @classmethod
    def none(cls) -> StoredTurns:
        return cls(new=[], duplicates=[], conflicts=[])

    @classmethod
    def compare(
        cls,
        turns: Sequence[ConversationTurn],
        stored: Mapping[UUID, str],
        *,
        all_taken: bool = False,
    ) -> StoredTurns:
        """`stored`: the fingerprint stored under each event id this tenant has taken.

        `all_taken`: the insert refused every one of `turns`, so an id absent from `stored` is
        taken where this tenant cannot see it (row-level security): another tenant's turn."""
        new, duplicates, conflicts = [], [], []
        for turn in turns:
            fingerprint = stored.get(turn.event_id)
            if fingerprint is None and not all_taken:
                new.append(turn)
            elif fingerprint == turn.fingerprint():
                duplicates.append(turn)
            else:
                conflicts.append(turn)
        return cls(new=new, duplicates=duplicates, conflicts=conflicts)


@dataclass(frozen=True, kw_only=True)
class ConversationOutcome:
    key: ConversationKey
    applied: int = 0  # turns stored and counted by this call
    deferred: int = 0  # turns stored for a deferred extraction (EXTRACT_DEBOUNCE_MS)
    redelivered: tuple[Event, ...] = ()  # events already stored: duplicates
    version: int | None = None  # the version written, None when nothing was new
    extraction_status: str | None = None
    conflicts: tuple[Event, ...] = ()  # reused event_ids with other content
    overrides_applied: int = 0
    erased: int = 0  # turns dropped: their conversation was erased while they were extracted
    unknown: tuple[QualificationOverride, ...] = ()  # overrides of a conversation with no state
    # PostgreSQL refused this conversation's data: its events are dead-lettered.
    rejected: PermanentError | None = None
    events: tuple[Event, ...] = ()  # what was sent for it (for the dead letters)

    @property
    def duplicates(self) -> int:
        return len(self.redelivered)

    def __add__(self, later: ConversationOutcome) -> ConversationOutcome:
        """This conversation's outcome after a later step of the same batch."""
        return ConversationOutcome(
            key=self.key,
            applied=self.applied + later.applied,
            deferred=self.deferred + later.deferred,
            redelivered=(*self.redelivered, *later.redelivered),
            version=later.version if later.version is not None else self.version,
            extraction_status=later.extraction_status or self.extraction_status,
            conflicts=(*self.conflicts, *later.conflicts),
            overrides_applied=self.overrides_applied + later.overrides_applied,
            erased=self.erased + later.erased,
            unknown=(*self.unknown, *later.unknown),
        )


@dataclass(frozen=True, kw_only=True)
class BatchOutcome:
    conversations: list[ConversationOutcome]
    batch_conflicts: list[Event] = field(default_factory=list)

    @property
    def applied(self) -> int:
        return sum(c.applied for c in self.conversations)

    @property
    def deferred(self) -> int:
        return sum(c.deferred for c in self.conversations)

    @property
    def duplicates(self) -> int:
        return sum(c.duplicates for c in self.conversations)

    @property
    def overrides_applied(self) -> int:
        return sum(c.overrides_applied for c in self.conversations)

    def dead_letters(self) -> dict[EventRef, DeadLetterDecision]:
        """Every event of the batch that must be dead-lettered, and why."""
        decisions: dict[EventRef, DeadLetterDecision] = {}
        for event in self.batch_conflicts:
            decisions[event_ref(event)] = _conflict(event)
        for outcome in self.conversations:
            for event in outcome.conflicts:
                decisions[event_ref(event)] = _conflict(event)
            unknown = DeadLetterDecision("unknown_conversation", UNKNOWN_CONVERSATION_DETAIL)
            decisions.update((event_ref(o), unknown) for o in outcome.unknown)
            if outcome.rejected is not None:
                refused = DeadLetterDecision("invalid_event", refused_detail(outcome.rejected))
                decisions.update((event_ref(e), refused) for e in outcome.events)
        return decisions


def _conflict(event: Event) -> DeadLetterDecision:
    detail = CONFLICT_DETAIL if isinstance(event, ConversationTurn) else OVERRIDE_CONFLICT_DETAIL
    return DeadLetterDecision("conflict", detail)


def group_by_conversation(
    events: Iterable[Event],
) -> tuple[dict[ConversationKey, list[Event]], list[Event]]:
    """Events grouped by the payload's conversation, each group in conversation order.

    An event_id repeated inside the batch (among turns, or among overrides) is kept once; a
    repeat with other content is a conflict (the first one wins), returned separately.
    """
    first: dict[tuple[type, UUID], Event] = {}
    conflicts: list[Event] = []
    for event in events:
        seen = first.setdefault((type(event), event.event_id), event)
        if seen is not event and seen.fingerprint() != event.fingerprint():
            conflicts.append(event)
    groups: dict[ConversationKey, list[Event]] = {}
    for event in first.values():
        groups.setdefault(event.key, []).append(event)
    return {key: in_conversation_order(group) for key, group in groups.items()}, conflicts


def in_conversation_order(events: Sequence[Event]) -> list[Event]:
    """Turns in their order (sequence, then occurred_at, then offset); each override goes
    before the first turn that happened after it (overrides keep their offset order)."""
    turns = order_turns([e for e in events if isinstance(e, ConversationTurn)])
    ordered: list[Event] = []
    for override in (e for e in events if isinstance(e, QualificationOverride)):
        while turns and turns[0].occurred_at <= override.occurred_at:
            ordered.append(turns.pop(0))
        ordered.append(override)
    return ordered + turns


def steps(events: Sequence[Event]) -> list[list[ConversationTurn] | QualificationOverride]:
    """The conversation's events as the steps its unit of work takes in order: runs of turns
    (one extraction each) and single overrides."""
    result: list[list[ConversationTurn] | QualificationOverride] = []
    for event in events:
        if isinstance(event, QualificationOverride):
            result.append(event)
        elif result and isinstance(result[-1], list):
            result[-1].append(event)
        else:
            result.append([event])
    return result
