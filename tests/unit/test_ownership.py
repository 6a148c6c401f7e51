"""`protect_owned`: an extraction never changes a human-owned dimension; its differing view of
that dimension becomes the dimension's suggestion (CONTRACT.md section 3, v2)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from schemas import (
    Actor,
    BANTSignals,
    ConversationState,
    MEDDICSignals,
    Owner,
    QualificationExtraction,
    QualificationOverride,
    QualificationState,
    Suggestion,
)
from worker.qualify.merge import merge_qualification_signals
from worker.qualify.overrides import apply_override
from worker.qualify.ownership import protect_owned

NOW = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)
REP = Actor(type="user", id="rep-7")
OWNED = {"budget": Owner(actor=REP, since=NOW)}


def budget_said(range_: str, confidence: float, quote: str) -> QualificationExtraction:
    return QualificationExtraction(
        bant=BANTSignals(
            budget_identified=True,
            budget_confidence=confidence,
            budget_range=range_,
            budget_evidence=[quote],
        )
    )


def extract(
    state: ConversationState, extraction: QualificationExtraction
) -> tuple[ConversationState, list[str]]:
    """One extraction as the commit path applies it: merge, then protect what people own."""
    merged = merge_qualification_signals(state.qualification, extraction, now=NOW)
    version = state.version + 1
    protected, suggestions, changed = protect_owned(
        state.qualification, merged, extraction, state.owners, state.suggestions, version
    )
    updated = state.model_copy(
        update={"qualification": protected, "suggestions": suggestions, "version": version}
    )
    return updated, changed


def state_with_budget_set_by_a_user() -> ConversationState:
    start = ConversationState(
        tenant_id=uuid.uuid4(),
        account_id="acme",
        contact_id="ann",
        contact_email="ann@acme.example",
        version=1,
        qualification=QualificationState(
            bant=BANTSignals(budget_identified=True, budget_confidence=0.6, budget_range="$50k")
        ),
    )
    user_sets = QualificationOverride.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "tenant_id": str(start.tenant_id),
            "account_id": "acme",
            "contact_id": "ann",
            "actor": REP.model_dump(),
            "occurred_at": NOW.isoformat(),
            "set": {"budget": {"budget_range": "$90k", "confidence": 0.8}},
        }
    )
    return apply_override(start, user_sets, now=NOW).state


def test_extractions_never_change_a_budget_a_user_set_and_each_view_becomes_the_suggestion() -> (
    None
):
    state = state_with_budget_set_by_a_user()
    for version, (range_, quote) in enumerate(
        [("$120k", "maybe 120k"), ("$150k", "150k at most"), ("$200k", "up to 200k")], start=3
    ):
        state, changed = extract(state, budget_said(range_, 0.95, quote))
        bant = state.qualification.bant
        assert (bant.budget_range, bant.budget_confidence) == ("$90k", 0.8)
        assert quote not in bant.budget_evidence
        assert state.suggestions["budget"] == Suggestion(
            values={"budget_range": range_},
            identified=True,
            confidence=0.95,
            evidence=[quote],
            version=version,
        )
        assert changed == ["budget"]


def test_an_extraction_that_agrees_records_no_suggestion_and_clears_an_old_one() -> None:
    state, _ = extract(state_with_budget_set_by_a_user(), budget_said("$120k", 0.9, "120k"))
    assert "budget" in state.suggestions
    state, changed = extract(state, budget_said("$90K ", 0.9, "ninety k"))
    assert state.suggestions == {} and changed == ["budget"]
    again, changed = extract(state, budget_said("$90k", 0.9, "ninety k"))
    assert again.suggestions == {} and changed == []


def test_an_extraction_silent_on_an_owned_dimension_keeps_its_suggestion() -> None:
    state, _ = extract(state_with_budget_set_by_a_user(), budget_said("$120k", 0.9, "120k"))
    silent = QualificationExtraction(
        bant=BANTSignals(need_identified=True, need_description="faster onboarding")
    )
    after, changed = extract(state, silent)
    assert after.suggestions == state.suggestions and changed == []


def test_unowned_dimensions_merge_normally_beside_an_owned_one() -> None:
    state = state_with_budget_set_by_a_user()
    extraction = QualificationExtraction(
        bant=BANTSignals(
            budget_identified=True,
            budget_confidence=0.99,
            budget_range="$300k",
            need_identified=True,
            need_confidence=0.7,
            need_description="faster onboarding",
        ),
        meddic=MEDDICSignals(decision_criteria=["SSO"], decision_criteria_confidence=0.6),
    )
    after, _ = extract(state, extraction)
    assert after.qualification.bant.need_description == "faster onboarding"
    assert after.qualification.meddic.decision_criteria == ["SSO"]
    assert after.qualification.bant.budget_range == "$90k"
    assert set(after.suggestions) == {"budget"}


def test_identifying_what_the_person_marked_unidentified_is_a_suggestion() -> None:
    existing = QualificationState(bant=BANTSignals(budget_identified=False, budget_confidence=1.0))
    extraction = QualificationExtraction(bant=BANTSignals(budget_identified=True))
    merged = merge_qualification_signals(existing, extraction, now=NOW)
    protected, suggestions, _ = protect_owned(existing, merged, extraction, OWNED, {}, 7)
    assert protected.bant.budget_identified is False
    assert suggestions["budget"].values == {"budget_range": None}
    assert suggestions["budget"].identified is True


def test_a_criterion_the_person_did_not_list_is_a_suggestion() -> None:
    owners = {"decision_criteria": Owner(actor=REP, since=NOW)}
    existing = QualificationState(meddic=MEDDICSignals(decision_criteria=["SSO", "SOC 2"]))
    subset = QualificationExtraction(meddic=MEDDICSignals(decision_criteria=["sso"]))
    more = QualificationExtraction(meddic=MEDDICSignals(decision_criteria=["SSO", "EU hosting"]))
    for extraction, suggested in ((subset, False), (more, True)):
        merged = merge_qualification_signals(existing, extraction, now=NOW)
        protected, suggestions, _ = protect_owned(existing, merged, extraction, owners, {}, 2)
        assert protected.meddic.decision_criteria == ["SSO", "SOC 2"]
        assert ("decision_criteria" in suggestions) is suggested


def test_a_suggestion_for_a_dimension_nobody_owns_is_dropped() -> None:
    stale = Suggestion(values={"need_description": "x"}, identified=True, confidence=0.5, version=1)
    existing = QualificationState()
    extraction = QualificationExtraction()
    merged = merge_qualification_signals(existing, extraction, now=NOW)
    _, suggestions, changed = protect_owned(existing, merged, extraction, {}, {"need": stale}, 2)
    assert suggestions == {} and changed == ["need"]
