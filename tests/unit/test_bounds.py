"""Bounds (CONTRACT.md section 2, v3): the merge keeps the newest items of every list, stays
idempotent, and the largest update event the bounds allow fits the producer's 1 MiB limit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import (
    Actor,
    Dimension,
    Owner,
    QualificationExtraction,
    QualificationState,
    QualificationUpdated,
    StageChange,
    conversation_key,
)
from schemas.bounds import EVIDENCE, KEY_INSIGHTS, LIST_VALUES, ListBound
from schemas.dimensions import DIMENSIONS, ValueKind
from schemas.events import ExtractionInfo
from worker.qualify.merge import (
    bounded,
    merge_qualification_signals,
    newest_within,
)
from worker.qualify.ownership import protect_owned

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
MIB = 1024 * 1024
# Six bytes of JSON a character (`\u0001`): the most any text can take once published.
WORST = "\x01"
SMALL = ListBound(items=3, item_bytes=40)


def test_the_newest_quotes_are_kept_and_the_new_ones_always() -> None:
    existing = [f"old quote {n}" for n in range(20)]
    merged = newest_within(existing, ["new quote A", "new quote B"], EVIDENCE)
    assert merged == [*existing[2:], "new quote A", "new quote B"]


def test_a_requoted_old_item_stays_where_it_was_and_is_kept() -> None:
    assert newest_within(["a", "b", "c"], ["a", "d"], SMALL) == ["a", "c", "d"]


def test_an_item_too_long_is_cut_to_a_start_of_it() -> None:
    quote = "We will sign once legal has read it. " * 40
    [cut] = newest_within([], [quote], EVIDENCE)
    assert quote.startswith(cut) and 480 < len(cut) <= EVIDENCE.item_bytes - 2
    [escaped] = newest_within([], [WORST * 1000], EVIDENCE)
    assert len(orjson.dumps(escaped)) <= EVIDENCE.item_bytes and len(escaped) == 83


@settings(max_examples=300, deadline=None)
@given(
    existing=st.lists(st.text(alphabet='ab\x01"é', max_size=12), max_size=8),
    new=st.lists(st.text(alphabet='ab\x01"é', max_size=12), max_size=8),
)
def test_merging_the_same_items_again_changes_nothing(existing: list[str], new: list[str]) -> None:
    once = newest_within(existing, new, SMALL)
    assert newest_within(once, new, SMALL) == once
    assert len(once) <= SMALL.items
    assert all(len(orjson.dumps(item)) <= SMALL.item_bytes for item in once)


def test_two_thousand_quotes_in_one_dimension_keep_the_newest_twenty() -> None:
    state = QualificationState()
    for n in range(2000):
        extraction = QualificationExtraction.model_validate(
            {"bant": {"need_identified": True, "need_evidence": [f"turn {n} says so"]}}
        )
        state = merge_qualification_signals(state, bounded(extraction), now=NOW)
    assert state.bant.need_evidence == [f"turn {n} says so" for n in range(1980, 2000)]


def hostile_extraction(tag: str) -> QualificationExtraction:
    """Every list far over its bound, every text at its longest and all of it six bytes a
    character once published."""
    text, quotes, items = tag + WORST * 1999, [f"{tag}{n}" + WORST * 3000 for n in range(100)], 100
    signals: dict[str, dict[str, object]] = {"bant": {}, "meddic": {}}
    for dimension in DIMENSIONS:
        fields = signals[dimension.group.value]
        if dimension.identified_field:
            fields[dimension.identified_field] = True
        fields[dimension.confidence_field] = 0.9
        fields[dimension.evidence_field] = quotes
        fields |= {
            f: text
            for f in (*dimension.of_kind(ValueKind.TEXT), *dimension.of_kind(ValueKind.CONTACT))
        }
        fields |= {
            f: [f"{tag}{n}" + WORST * 1990 for n in range(items)]
            for f in dimension.of_kind(ValueKind.LIST)
        }
    return QualificationExtraction.model_validate(
        {
            **signals,
            "overall_confidence": 0.9,
            "key_insights": [f"{tag}{n}" + WORST * 1990 for n in range(items)],
            "recommended_next_questions": [f"{tag}{n}" + WORST * 1990 for n in range(items)],
        }
    )


def test_the_largest_event_the_bounds_allow_fits_one_mebibyte() -> None:
    """A state full of one hostile extraction, every dimension owned by a person (actor ids of
    200 escaped characters) with a full suggestion from another, 2,000 turns in the version."""
    state = merge_qualification_signals(
        QualificationState(), bounded(hostile_extraction("a")), now=NOW
    )
    second = bounded(hostile_extraction("b"))
    actor = Actor(type="user", id=WORST * 200)
    owners = {d.value: Owner(actor=actor, since=NOW) for d in Dimension}
    merged = merge_qualification_signals(state, second, now=NOW)
    kept, suggestions, _ = protect_owned(state, merged, second, owners, {}, 2)
    assert set(suggestions) == {d.value for d in Dimension}
    tenant = uuid.uuid4()
    account, contact = WORST * 100, WORST * 100
    event = QualificationUpdated(
        event_id=uuid.uuid4(),
        tenant_id=tenant,
        account_id=account,
        contact_id=contact,
        version=2,
        deal_stage="evaluation",
        previous_stage="qualification",
        stage_change=StageChange(
            from_stage="qualification", to_stage="evaluation", accepted=True, reason=WORST * 500
        ),
        qualification=kept,
        changed_fields=[f"{d.group.value}.{d.name}" for d in DIMENSIONS],
        interaction_count=2000,
        confidence_score=0.9,
        extraction=ExtractionInfo(status="ok", model=WORST * 200, prompt_version="v", turns=2000),
        turn_event_ids=[uuid.uuid4() for _ in range(2000)],
        source="turns",
        actor=actor,
        owners=owners,
        suggestions=suggestions,
        occurred_at=NOW,
    )
    published = orjson.dumps(event.model_dump(mode="json", by_alias=True))
    key = conversation_key(tenant, account, contact).encode()
    print(f"largest update event: {len(published)} bytes")
    assert len(published) + len(key) + 1024 < MIB
    assert len(kept.key_insights) == KEY_INSIGHTS.items
    assert [q[:3] for q in kept.recommended_next_questions] == [f"b{n}" + WORST for n in range(10)]
    assert len(kept.meddic.decision_criteria) == LIST_VALUES.items
