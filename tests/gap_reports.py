"""Checks that every `qualification.updated` carries the gap report its state implies."""

from __future__ import annotations

from collections.abc import Iterable

from schemas import OPEN_STAGES, ConversationKey, DealStage, QualificationUpdated
from worker.qualify.criteria import DEFAULT_CRITERIA, StageCriteria, next_stage


def assert_next_stages_consistent(
    events: Iterable[QualificationUpdated], criteria: StageCriteria = DEFAULT_CRITERIA
) -> int:
    """Recomputes each event's `next_stage` from its own state (stage, qualification) and the
    `stalled_from` the event stream implies: a deal that stalls remembers the open stage it
    left, and keeps it while it stays stalled. Returns how many events it checked."""
    stalled_from: dict[ConversationKey, DealStage | None] = {}
    checked = 0
    for event in sorted(events, key=lambda e: (str(key_of(e)), e.version)):
        key = key_of(event)
        if event.deal_stage is not DealStage.STALLED:
            stalled_from[key] = None
        elif event.previous_stage in OPEN_STAGES:
            stalled_from[key] = event.previous_stage
        expected = next_stage(
            event.deal_stage, stalled_from.get(key), event.qualification, criteria
        )
        assert event.next_stage == expected, (key, event.version, event.next_stage, expected)
        checked += 1
    return checked


def key_of(event: QualificationUpdated) -> ConversationKey:
    return ConversationKey(event.tenant_id, event.account_id, event.contact_id)
