"""Merge rules (CONTRACT.md section 3): examples, then properties over generated signals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar, get_origin

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from schemas import (
    BANTSignals,
    MEDDICSignals,
    QualificationExtraction,
    QualificationSignals,
    QualificationState,
)
from schemas.dimensions import DIMENSIONS, DimensionSpec, Group, ValueKind
from worker.qualify.merge import (
    changed_fields,
    merge_bant_signals,
    merge_meddic_signals,
    merge_qualification_signals,
)

BANT_DIMENSIONS = DIMENSIONS.in_group(Group.BANT)
MEDDIC_DIMENSIONS = DIMENSIONS.in_group(Group.MEDDIC)
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
LATER = datetime(2025, 1, 3, tzinfo=UTC)
PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# --- examples ----------------------------------------------------------------------------


def test_seed_lower_confidence_keeps_budget_and_adds_need() -> None:
    existing = BANTSignals(budget_identified=True, budget_range="100k", budget_confidence=0.8)
    new = BANTSignals(
        budget_identified=True,
        budget_range="200k",
        budget_confidence=0.6,
        need_identified=True,
        need_description="Reduce costs",
    )
    merged = merge_bant_signals(existing, new)
    assert merged.budget_range == "100k" and merged.need_identified is True


def test_lower_confidence_never_replaces_value() -> None:
    existing = BANTSignals(need_identified=True, need_description="old", need_confidence=0.9)
    new = BANTSignals(need_identified=True, need_description="new", need_confidence=0.5)
    merged = merge_bant_signals(existing, new)
    assert merged.need_description == "old"
    assert merged.need_confidence == 0.9


def test_higher_confidence_replaces_value_fields_as_a_group() -> None:
    existing = BANTSignals(
        authority_identified=True,
        authority_role="VP Sales",
        authority_contact="Ann",
        authority_confidence=0.4,
    )
    new = BANTSignals(
        authority_identified=True,
        authority_role="CFO",
        authority_contact="Bob",
        authority_confidence=0.7,
    )
    merged = merge_bant_signals(existing, new)
    assert (merged.authority_role, merged.authority_contact) == ("CFO", "Bob")
    assert merged.authority_confidence == 0.7


def test_equal_confidence_takes_the_later_value() -> None:
    """Merge rule v2 (was: a tie kept the stored value)."""
    existing = BANTSignals(
        timeline_identified=True, timeline_description="Q3", timeline_confidence=0.6
    )
    new = BANTSignals(timeline_identified=True, timeline_description="Q4", timeline_confidence=0.6)
    assert merge_bant_signals(existing, new).timeline_description == "Q4"


def test_a_revised_budget_at_equal_confidence_reads_the_new_amount_and_keeps_both_quotes() -> None:
    first = BANTSignals(
        budget_identified=True,
        budget_range="$50k",
        budget_confidence=0.8,
        budget_evidence=["We set aside $50k for this."],
    )
    revised = BANTSignals(
        budget_identified=True,
        budget_range="$80k",
        budget_confidence=0.8,
        budget_evidence=["Finance moved it up to $80k."],
    )
    merged = merge_bant_signals(first, revised)
    assert merged.budget_range == "$80k"
    assert merged.budget_confidence == 0.8
    assert merged.budget_evidence == ["We set aside $50k for this.", "Finance moved it up to $80k."]
    assert merge_bant_signals(merged, revised) == merged


def test_an_unidentified_dimension_keeps_its_values_against_an_unidentified_extraction() -> None:
    existing = BANTSignals(need_confidence=0.2, need_description="hint")
    new = BANTSignals(need_confidence=0.4, need_description=None)
    merged = merge_bant_signals(existing, new)
    assert merged.need_description == "hint"
    assert merged.need_confidence == 0.4


def test_first_identification_wins_even_at_lower_confidence() -> None:
    existing = BANTSignals(budget_identified=False, budget_confidence=0.7)
    new = BANTSignals(budget_identified=True, budget_range="50k", budget_confidence=0.3)
    merged = merge_bant_signals(existing, new)
    assert merged.budget_identified is True
    assert merged.budget_range == "50k"
    assert merged.budget_confidence == 0.7  # the kept confidence is the max


def test_unidentified_extraction_never_replaces_identified_values() -> None:
    existing = BANTSignals(
        need_identified=True, need_description="Reduce costs", need_confidence=0.5
    )
    new = BANTSignals(need_identified=False, need_confidence=0.9)
    merged = merge_bant_signals(existing, new)
    assert merged.need_identified is True
    assert merged.need_description == "Reduce costs"
    assert merged.need_confidence == 0.9


def test_null_contact_never_replaces_a_known_contact() -> None:
    existing = MEDDICSignals(
        champion_identified=True, champion_contact="Ann", champion_confidence=0.3
    )
    new = MEDDICSignals(champion_identified=True, champion_contact=None, champion_confidence=0.8)
    merged = merge_meddic_signals(existing, new)
    assert merged.champion_contact == "Ann"
    assert merged.champion_confidence == 0.8


def test_losing_extraction_does_not_fill_in_a_missing_contact() -> None:
    """Value fields come from one side as a group; only the winner's null falls back."""
    existing = MEDDICSignals(economic_buyer_identified=True, economic_buyer_confidence=0.9)
    new = MEDDICSignals(
        economic_buyer_identified=True, economic_buyer_contact="Bob", economic_buyer_confidence=0.2
    )
    assert merge_meddic_signals(existing, new).economic_buyer_contact is None


def test_evidence_is_the_union_in_arrival_order_without_duplicates() -> None:
    existing = BANTSignals(budget_evidence=["a", "b"], budget_confidence=0.9)
    new = BANTSignals(budget_evidence=["b", "c", "c"], budget_confidence=0.1)
    assert merge_bant_signals(existing, new).budget_evidence == ["a", "b", "c"]


def test_decision_criteria_extend_with_new_unique_items() -> None:
    existing = MEDDICSignals(decision_criteria=["price", "SSO"], decision_criteria_confidence=0.9)
    new = MEDDICSignals(decision_criteria=["SSO", "SOC 2"], decision_criteria_confidence=0.2)
    merged = merge_meddic_signals(existing, new)
    assert merged.decision_criteria == ["price", "SSO", "SOC 2"]
    assert merged.decision_criteria_confidence == 0.9


def test_empty_decision_criteria_never_clear_known_ones() -> None:
    existing = MEDDICSignals(decision_criteria=["price"], decision_criteria_confidence=0.2)
    new = MEDDICSignals(decision_criteria=[], decision_criteria_confidence=0.9)
    assert merge_meddic_signals(existing, new).decision_criteria == ["price"]


def test_state_wide_fields_merge() -> None:
    existing = QualificationState(
        overall_confidence=0.6,
        key_insights=["uses Salesforce"],
        recommended_next_questions=["Who signs?"],
    )
    new = QualificationExtraction(
        overall_confidence=0.4,
        key_insights=["uses Salesforce", "2 regions"],
        recommended_next_questions=["When is the renewal?"],
    )
    merged = merge_qualification_signals(existing, new, now=NOW)
    assert merged.overall_confidence == 0.6
    assert merged.key_insights == ["uses Salesforce", "2 regions"]
    assert merged.recommended_next_questions == ["When is the renewal?"]
    assert merged.last_updated == NOW


def test_empty_next_questions_keep_the_old_ones() -> None:
    existing = QualificationState(recommended_next_questions=["Who signs?"])
    merged = merge_qualification_signals(existing, QualificationSignals(), now=NOW)
    assert merged.recommended_next_questions == ["Who signs?"]


def test_changed_fields_name_the_dimensions_that_changed() -> None:
    existing = QualificationState(bant=BANTSignals(budget_identified=True, budget_confidence=0.8))
    new = QualificationExtraction(
        bant=BANTSignals(budget_confidence=0.2, authority_identified=True, authority_role="CFO"),
        meddic=MEDDICSignals(decision_criteria=["price"]),
        key_insights=["new insight"],
    )
    merged = merge_qualification_signals(existing, new, now=NOW)
    assert changed_fields(existing, merged) == [
        "bant.authority",
        "meddic.decision_criteria",
        "key_insights",
    ]


def test_evidence_alone_counts_as_a_change() -> None:
    existing = QualificationState(meddic=MEDDICSignals(champion_evidence=["a"]))
    new = QualificationSignals(meddic=MEDDICSignals(champion_evidence=["b"]))
    merged = merge_qualification_signals(existing, new, now=NOW)
    assert changed_fields(existing, merged) == ["meddic.champion"]


def test_last_updated_alone_is_no_change() -> None:
    state = QualificationState(overall_confidence=0.5, key_insights=["x"])
    merged = merge_qualification_signals(state, QualificationSignals(), now=LATER)
    assert merged.last_updated == LATER
    assert changed_fields(state, merged) == []


def test_every_model_field_is_owned_by_exactly_one_dimension() -> None:
    for model, dimensions in ((BANTSignals, BANT_DIMENSIONS), (MEDDICSignals, MEDDIC_DIMENSIONS)):
        owned = [field for dimension in dimensions for field in dimension.fields]
        assert len(owned) == len(set(owned))
        assert set(owned) == set(model.model_fields)


def test_every_dimension_has_a_confidence_and_evidence_field() -> None:
    for model, dimensions in ((BANTSignals, BANT_DIMENSIONS), (MEDDICSignals, MEDDIC_DIMENSIONS)):
        prefixes = {
            f.removesuffix("_confidence") for f in model.model_fields if f.endswith("_confidence")
        }
        assert {dimension.name for dimension in dimensions} == prefixes


# --- generated signals -------------------------------------------------------------------

# Few distinct values, so ties, overlaps and duplicates happen often.
confidences = st.sampled_from([0.0, 0.2, 0.5, 0.8, 1.0])
texts = st.sampled_from(["a", "b", "c", "d"])
text_lists = st.lists(texts, max_size=4)
optional_texts = st.none() | st.sampled_from(["x", "y", "z"])

SignalsT = TypeVar("SignalsT", BANTSignals, MEDDICSignals)


def _field_strategy(name: str, annotation: Any) -> st.SearchStrategy[Any]:
    """Chosen from the model's own field names and types, not from the merge table."""
    if name.endswith("_identified"):
        return st.booleans()
    if name.endswith("_confidence"):
        return confidences
    if get_origin(annotation) is list:
        return text_lists
    return optional_texts


def signals(model: type[SignalsT]) -> st.SearchStrategy[SignalsT]:
    fields = {
        name: _field_strategy(name, info.annotation) for name, info in model.model_fields.items()
    }
    return st.builds(model, **fields)


bants = signals(BANTSignals)
meddics = signals(MEDDICSignals)
states = st.builds(
    QualificationState,
    bant=bants,
    meddic=meddics,
    overall_confidence=confidences,
    key_insights=text_lists,
    recommended_next_questions=text_lists,
    last_updated=st.none() | st.just(NOW),
)
extractions = st.builds(
    QualificationExtraction,
    bant=bants,
    meddic=meddics,
    overall_confidence=confidences,
    key_insights=text_lists,
    recommended_next_questions=text_lists,
)

DIMENSIONS: list[tuple[str, DimensionSpec]] = [
    *(("bant", d) for d in BANT_DIMENSIONS),
    *(("meddic", d) for d in MEDDIC_DIMENSIONS),
]


def _each_dimension(
    *states_: QualificationSignals,
) -> list[tuple[DimensionSpec, list[BaseModel]]]:
    return [(d, [getattr(s, group) for s in states_]) for group, d in DIMENSIONS]


@PROPERTY_SETTINGS
@given(states, extractions)
def test_merging_the_same_extraction_twice_changes_nothing_more(
    state: QualificationState, extraction: QualificationExtraction
) -> None:
    once = merge_qualification_signals(state, extraction, now=NOW)
    twice = merge_qualification_signals(once, extraction, now=NOW)
    assert twice == once
    assert changed_fields(once, twice) == []


@PROPERTY_SETTINGS
@given(bants, bants, meddics, meddics)
def test_signal_merges_are_idempotent(
    b1: BANTSignals, b2: BANTSignals, m1: MEDDICSignals, m2: MEDDICSignals
) -> None:
    bant = merge_bant_signals(b1, b2)
    assert merge_bant_signals(bant, b2) == bant
    meddic = merge_meddic_signals(m1, m2)
    assert merge_meddic_signals(meddic, m2) == meddic


@PROPERTY_SETTINGS
@given(states, extractions)
def test_evidence_is_never_lost(
    state: QualificationState, extraction: QualificationExtraction
) -> None:
    merged = merge_qualification_signals(state, extraction, now=NOW)
    for dimension, (before, new, after) in _each_dimension(state, extraction, merged):
        kept = getattr(after, dimension.evidence_field)
        old = list(dict.fromkeys(getattr(before, dimension.evidence_field)))
        assert kept[: len(old)] == old  # existing order first
        assert set(kept) == set(old) | set(getattr(new, dimension.evidence_field))
        assert len(kept) == len(set(kept))
    assert set(merged.key_insights) == set(state.key_insights) | set(extraction.key_insights)


@PROPERTY_SETTINGS
@given(states, extractions)
def test_confidence_never_decreases(
    state: QualificationState, extraction: QualificationExtraction
) -> None:
    merged = merge_qualification_signals(state, extraction, now=NOW)
    for dimension, (before, new, after) in _each_dimension(state, extraction, merged):
        assert dimension.confidence(after) == max(
            dimension.confidence(before), dimension.confidence(new)
        )
    assert merged.overall_confidence == max(state.overall_confidence, extraction.overall_confidence)


@PROPERTY_SETTINGS
@given(states, extractions)
def test_identified_never_reverts(
    state: QualificationState, extraction: QualificationExtraction
) -> None:
    merged = merge_qualification_signals(state, extraction, now=NOW)
    for dimension, (before, new, after) in _each_dimension(state, extraction, merged):
        expected = dimension.is_identified(before) or dimension.is_identified(new)
        assert dimension.is_identified(after) is expected


@st.composite
def competing_arrivals(
    draw: st.DrawFn,
) -> tuple[
    str, DimensionSpec, QualificationState, QualificationExtraction, QualificationExtraction
]:
    """A state and two extractions that both identify one dimension, at different confidences.

    Their contacts are non-null: a null contact falls back to whatever is already known, which
    depends on arrival order by design (see test_null_contact_never_replaces_a_known_contact).
    """
    group, dimension = draw(st.sampled_from(DIMENSIONS))
    state, x, y = draw(states), draw(extractions), draw(extractions)
    cx, cy = draw(st.lists(confidences, min_size=2, max_size=2, unique=True))
    return (
        group,
        dimension,
        state,
        _identify(x, group, dimension, cx, draw),
        _identify(y, group, dimension, cy, draw),
    )


def _identify(
    extraction: QualificationExtraction,
    group: str,
    dimension: DimensionSpec,
    confidence: float,
    draw: st.DrawFn,
) -> QualificationExtraction:
    update: dict[str, Any] = {dimension.confidence_field: confidence}
    if dimension.identified_field:
        update[dimension.identified_field] = True
    update |= {
        field: draw(st.sampled_from(["p", "q", "r"]))
        for field in dimension.of_kind(ValueKind.CONTACT)
    }
    update |= {
        field: draw(st.lists(texts, min_size=1, max_size=3))
        for field in dimension.of_kind(ValueKind.LIST)
    }
    signals = getattr(extraction, group).model_copy(update=update)
    return extraction.model_copy(update={group: signals})


@PROPERTY_SETTINGS
@given(competing_arrivals())
def test_arrival_order_does_not_change_which_value_wins(
    arrivals: tuple[
        str, DimensionSpec, QualificationState, QualificationExtraction, QualificationExtraction
    ],
) -> None:
    group, dimension, state, x, y = arrivals
    stored = getattr(state, group)
    # Excluded: a stored *unidentified* dimension whose confidence is at least both arrivals'.
    # The kept confidence is the max, so the first identification to arrive inherits that
    # confidence and no later one can beat it: first come wins, by the contract's rules.
    assume(
        dimension.is_identified(stored)
        or dimension.confidence(stored)
        < max(dimension.confidence(getattr(x, group)), dimension.confidence(getattr(y, group)))
    )
    xy = getattr(
        merge_qualification_signals(merge_qualification_signals(state, x, now=NOW), y, now=NOW),
        group,
    )
    yx = getattr(
        merge_qualification_signals(merge_qualification_signals(state, y, now=NOW), x, now=NOW),
        group,
    )
    for field in dimension.of_kind(ValueKind.TEXT) + dimension.of_kind(ValueKind.CONTACT):
        assert getattr(xy, field) == getattr(yx, field)
    for field in dimension.of_kind(
        ValueKind.LIST
    ):  # lists are unions: same items, in arrival order
        assert set(getattr(xy, field)) == set(getattr(yx, field))
