"""`apply_override`: a person's correction as the next version of a conversation (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import (
    Actor,
    BANTSignals,
    ConversationState,
    DealStage,
    MEDDICSignals,
    Owner,
    QualificationOverride,
    QualificationState,
    Suggestion,
)
from worker.qualify.criteria import DEFAULT_CRITERIA
from worker.qualify.overrides import apply_override

NOW = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(days=1)
TENANT = uuid.uuid4()
REP = Actor(type="user", id="rep-7")
CRM = Actor(type="crm", id="salesforce")


def conversation(**fields: Any) -> ConversationState:
    base: dict[str, Any] = {
        "tenant_id": TENANT,
        "account_id": "acme",
        "contact_id": "ann",
        "contact_email": "ann@acme.example",
        "version": 3,
        "qualification": QualificationState(
            bant=BANTSignals(
                budget_identified=True,
                budget_confidence=0.7,
                budget_evidence=["we have about $50k"],
                budget_range="$50k",
                authority_identified=True,
                authority_confidence=0.6,
                authority_contact="Jane Roe",
                authority_role="VP Sales",
            ),
            meddic=MEDDICSignals(decision_criteria=["SSO"], decision_criteria_confidence=0.5),
            overall_confidence=0.6,
        ),
    }
    return ConversationState.model_validate(base | fields)


def override(actor: Actor = REP, **fields: Any) -> QualificationOverride:
    return QualificationOverride.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "tenant_id": str(TENANT),
            "account_id": "acme",
            "contact_id": "ann",
            "actor": actor.model_dump(),
            "occurred_at": "2026-10-05T11:59:00+00:00",
        }
        | fields
    )


def test_set_takes_the_value_as_given_and_owns_the_dimension() -> None:
    before = conversation()
    result = apply_override(before, override(set={"budget": {"budget_range": "$90k"}}), now=NOW)
    bant = result.state.qualification.bant
    assert (bant.budget_range, bant.budget_identified, bant.budget_confidence) == (
        "$90k",
        True,
        1.0,
    )
    assert bant.budget_evidence == ["we have about $50k"], "evidence stays quoted"
    assert result.state.owners == {"budget": Owner(actor=REP, since=NOW)}
    assert (result.state.version, result.state.updated_at) == (4, NOW)
    assert result.state.qualification.last_updated == NOW
    assert result.changed_fields == ["bant.budget", "owners.budget"]
    assert (result.actor, result.source, result.stage_change) == (REP, "override", None)


def test_set_replaces_only_the_fields_given_and_a_null_clears_one() -> None:
    result = apply_override(
        conversation(),
        override(set={"authority": {"authority_role": "CFO", "authority_contact": None}}),
        now=NOW,
    )
    bant = result.state.qualification.bant
    assert (bant.authority_role, bant.authority_contact) == ("CFO", None)
    kept = apply_override(conversation(), override(set={"authority": {"confidence": 0.9}}), now=NOW)
    assert kept.state.qualification.bant.authority_role == "VP Sales"
    assert kept.state.qualification.bant.authority_confidence == 0.9


def test_set_not_identified_clears_the_values_not_given() -> None:
    result = apply_override(
        conversation(), override(set={"budget": {"identified": False}}), now=NOW
    )
    bant = result.state.qualification.bant
    assert (bant.budget_identified, bant.budget_range) == (False, None)
    assert "budget" in result.state.owners, "a person's 'no budget known' is owned too"


def test_decision_criteria_are_replaced_by_the_given_list() -> None:
    result = apply_override(
        conversation(),
        override(set={"decision_criteria": {"decision_criteria": ["SOC 2", "EU hosting"]}}),
        now=NOW,
    )
    assert result.state.qualification.meddic.decision_criteria == ["SOC 2", "EU hosting"]
    assert "meddic.decision_criteria" in result.changed_fields


def test_set_drops_the_dimensions_suggestion_and_keeps_the_others() -> None:
    suggestion = Suggestion(
        values={"budget_range": "$70k"}, identified=True, confidence=0.9, version=3
    )
    before = conversation(
        owners={"budget": Owner(actor=REP, since=EARLIER), "need": Owner(actor=REP, since=EARLIER)},
        suggestions={"budget": suggestion, "need": suggestion},
    )
    result = apply_override(before, override(set={"budget": {"budget_range": "$90k"}}), now=NOW)
    assert set(result.state.suggestions) == {"need"}
    assert result.state.owners["budget"].since == EARLIER, "the same actor keeps owning it"
    assert result.changed_fields == ["bant.budget", "suggestions.budget"]


def test_lock_owns_without_changing_values_and_another_actor_takes_over() -> None:
    before = conversation(owners={"need": Owner(actor=CRM, since=EARLIER)})
    result = apply_override(before, override(lock=["budget", "need"]), now=NOW)
    assert result.state.qualification == before.qualification
    assert result.state.owners == {
        "budget": Owner(actor=REP, since=NOW),
        "need": Owner(actor=REP, since=NOW),
    }
    assert result.changed_fields == ["owners.budget", "owners.need"]


def test_unlock_hands_back_and_drops_the_suggestion_without_applying_it() -> None:
    suggestion = Suggestion(
        values={"budget_range": "$70k"}, identified=True, confidence=0.9, version=3
    )
    before = conversation(
        owners={"budget": Owner(actor=REP, since=EARLIER)}, suggestions={"budget": suggestion}
    )
    result = apply_override(before, override(actor=CRM, unlock=["budget", "champion"]), now=NOW)
    assert result.state.owners == {} and result.state.suggestions == {}
    assert result.state.qualification.bant.budget_range == "$50k"
    assert result.changed_fields == ["owners.budget", "suggestions.budget"]


def test_a_person_may_set_a_stage_the_machine_would_reject() -> None:
    result = apply_override(
        conversation(deal_stage=DealStage.PROSPECTING),
        override(stage={"to": "evaluation", "reason": "call with the CFO last week"}),
        now=NOW,
    )
    assert result.state.deal_stage is DealStage.EVALUATION
    assert result.stage_change is not None
    assert result.stage_change.model_dump(by_alias=True) == {
        "from": DealStage.PROSPECTING,
        "to": DealStage.EVALUATION,
        "accepted": True,
        "reason": "call with the CFO last week",
        "steps": [],  # a person's setting: no AI walk
    }
    assert result.changed_fields == ["deal_stage"]
    before = conversation()
    version = result.as_next_version(before, DEFAULT_CRITERIA)
    assert (version.state, version.stage_change) == (result.state, result.stage_change)
    assert (version.source, version.actor, version.before) == ("override", result.actor, before)
    assert version.next_stage is not None and version.next_stage.stage is DealStage.NEGOTIATION


def test_stalling_remembers_the_open_stage_and_leaving_stalled_forgets_it() -> None:
    stalled = apply_override(
        conversation(deal_stage=DealStage.EVALUATION),
        override(stage={"to": "stalled", "reason": "budget freeze"}),
        now=NOW,
    ).state
    assert (stalled.deal_stage, stalled.stalled_from) == (DealStage.STALLED, DealStage.EVALUATION)
    resumed = apply_override(
        stalled, override(stage={"to": "negotiation", "reason": "freeze lifted"}), now=NOW
    ).state
    assert (resumed.deal_stage, resumed.stalled_from) == (DealStage.NEGOTIATION, None)


def test_a_closed_deal_reopened_as_stalled_has_no_stage_to_resume() -> None:
    reopened = apply_override(
        conversation(deal_stage=DealStage.CLOSED_LOST),
        override(stage={"to": "stalled", "reason": "they came back"}),
        now=NOW,
    ).state
    assert (reopened.deal_stage, reopened.stalled_from) == (DealStage.STALLED, None)


def test_naming_the_current_stage_is_no_stage_change() -> None:
    result = apply_override(
        conversation(deal_stage=DealStage.DISCOVERY),
        override(stage={"to": "discovery", "reason": "still discovering"}),
        now=NOW,
    )
    assert result.stage_change is None and result.changed_fields == []
    assert result.state.version == 4, "still a version: the override is recorded with it"
