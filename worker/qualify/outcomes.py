"""What processing a batch decided: per conversation what was applied, and per turn which ones
must go to the dead-letter topic and why. Pure.

A turn is named by `(event_id, fingerprint)`: the same id with other content is another turn
(a conflict), the same id with the same content is a redelivery of this one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from uuid import UUID

from schemas import ConversationKey, ConversationTurn
from worker.errors import PermanentError
from worker.qualify.versioning import order_turns

TurnId = tuple[UUID, str]  # (event_id, fingerprint)
CONFLICT_DETAIL = "event_id already used by a turn with other content; the first one wins"


def turn_id(turn: ConversationTurn) -> TurnId:
    return turn.event_id, turn.fingerprint()


@dataclass(frozen=True, slots=True)
class DeadLetterDecision:
    reason: Literal["conflict", "invalid_event", "unknown_conversation"]
    detail: str


@dataclass(frozen=True, kw_only=True)
class StoredTurns:
    """How the turns of one conversation compare with what is stored: decided once per turn."""

    new: list[ConversationTurn]
    duplicates: list[ConversationTurn]  # same id, same content: a redelivery
    conflicts: list[ConversationTurn]  # same id, other content: the stored one won

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
    duplicates: int = 0  # turns that were already stored
    version: int | None = None  # the version written, None when nothing was new
    extraction_status: str | None = None
    conflicts: tuple[ConversationTurn, ...] = ()  # reused event_ids with other content
    # PostgreSQL refused this conversation's data: its turns are dead-lettered.
    rejected: PermanentError | None = None
    turns: tuple[ConversationTurn, ...] = ()  # what was sent for it (for the dead letters)


@dataclass(frozen=True, kw_only=True)
class BatchOutcome:
    conversations: list[ConversationOutcome]
    batch_conflicts: list[ConversationTurn] = field(default_factory=list)

    @property
    def applied(self) -> int:
        return sum(c.applied for c in self.conversations)

    @property
    def duplicates(self) -> int:
        return sum(c.duplicates for c in self.conversations)

    def dead_letters(self) -> dict[TurnId, DeadLetterDecision]:
        """Every turn of the batch that must be dead-lettered, and why."""
        decisions: dict[TurnId, DeadLetterDecision] = {}
        conflict = DeadLetterDecision("conflict", CONFLICT_DETAIL)
        for turn in self.batch_conflicts:
            decisions[turn_id(turn)] = conflict
        for outcome in self.conversations:
            for turn in outcome.conflicts:
                decisions[turn_id(turn)] = conflict
            if outcome.rejected is not None:
                refused = DeadLetterDecision(
                    "invalid_event", f"rejected by PostgreSQL: {outcome.rejected}"
                )
                decisions.update((turn_id(t), refused) for t in outcome.turns)
        return decisions


def group_by_conversation(
    turns: Iterable[ConversationTurn],
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
