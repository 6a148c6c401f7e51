"""The pure half of inactivity stalls: the stall's version, the quiet rule, and a turn resuming
a deal stalled by inactivity before its own proposal is judged (CONTRACT.md section 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas import (
    OPEN_STAGES,
    BANTSignals,
    ConversationState,
    ConversationTurn,
    DealStage,
    Dimension,
    MEDDICSignals,
    NextStage,
    QualificationExtraction,
    QualificationState,
    StageChange,
    StageMove,
)
from tests.builders import KEY, state_at
from tests.harness import turn
from worker.extract.port import ExtractionResult
from worker.qualify.criteria import DEFAULT_CRITERIA
from worker.qualify.stages import ACTIVITY_RESUMED, is_inactive
from worker.qualify.update_event import update_event
from worker.qualify.versioning import (
    NextVersion,
    gap_report,
    version_from_inactivity,
    version_from_turns,
)

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def quiet_state(
    stage: DealStage,
    *,
    stalled_from: DealStage | None = None,
    quiet_days: float | None = 40,
    qualified: bool = False,
) -> ConversationState:
    """A deal at `stage` whose last turn is `quiet_days` old (None: it has no turn yet)."""
    qualification = QualificationState(
        bant=BANTSignals(need_identified=qualified),
        meddic=MEDDICSignals(identify_pain_identified=qualified),
    )
    return state_at(
        stage,
        stalled_from=stalled_from,
        qualification=qualification,
        last_interaction=None if quiet_days is None else NOW - timedelta(days=quiet_days),
        interaction_count=4,
        version=7,
    )


def proposing(stage: DealStage | None) -> ExtractionResult:
    extraction = QualificationExtraction(suggested_stage=stage, stage_reason="the model says so")
    return ExtractionResult(status="ok", extraction=extraction, model="m", prompt_version="p")


FAILED = ExtractionResult(status="failed", extraction=None, model="m", prompt_version="p")


def new_turn() -> ConversationTurn:
    payload = turn(KEY.tenant_id, KEY.account_id, KEY.contact_id, 9, "hello again")
    return ConversationTurn.model_validate({**payload, "occurred_at": NOW.isoformat()})


@pytest.mark.parametrize("stage", OPEN_STAGES)
def test_an_open_deal_stalls_remembering_where_it_was(stage: DealStage) -> None:
    before = quiet_state(stage, qualified=True)
    version = version_from_inactivity(before, now=NOW, days=30)
    assert version.source == "inactivity"
    assert version.state.deal_stage is DealStage.STALLED
    assert version.state.stalled_from is stage
    assert version.state.version == 8 and version.state.updated_at == NOW
    assert version.state.qualification == before.qualification
    assert version.state.interaction_count == 4
    assert version.stage_change == StageChange(
        from_stage=stage,
        to_stage=DealStage.STALLED,
        accepted=True,
        reason="no activity for 30 days",
    )
    assert version.extraction is None and version.turn_event_ids == []
    assert version.changed_fields == ["deal_stage"]
    assert version.next_stage == gap_report(version.state, DEFAULT_CRITERIA)
    assert version.next_stage is not None and version.next_stage.stage is stage


def test_the_stall_event_says_inactivity_and_carries_no_extraction() -> None:
    event = update_event(
        version_from_inactivity(quiet_state(DealStage.DISCOVERY), now=NOW, days=45)
    )
    payload = event.model_dump(mode="json", by_alias=True)
    assert payload["source"] == "inactivity" and payload["actor"] is None
    assert payload["extraction"] is None and payload["turn_event_ids"] == []
    assert (payload["previous_stage"], payload["deal_stage"]) == ("discovery", "stalled")
    assert payload["stage_change"] == {
        "from": "discovery",
        "to": "stalled",
        "accepted": True,
        "reason": "no activity for 45 days",
        "steps": [],  # the worker's own move, no AI walk
    }
    assert payload["next_stage"] == {"stage": "discovery", "missing": []}
    assert payload["occurred_at"] == "2026-12-03T09:00:00Z"


@pytest.mark.parametrize("stage", [DealStage.STALLED, DealStage.CLOSED_WON, DealStage.CLOSED_LOST])
def test_only_open_deals_stall_for_inactivity(stage: DealStage) -> None:
    assert not is_inactive(quiet_state(stage), now=NOW, days=30)
    with pytest.raises(ValueError, match="only an open deal"):
        version_from_inactivity(quiet_state(stage), now=NOW, days=30)


def test_quiet_means_the_latest_turn_is_more_than_the_days_old() -> None:
    assert is_inactive(quiet_state(DealStage.EVALUATION, quiet_days=30.01), now=NOW, days=30)
    assert not is_inactive(quiet_state(DealStage.EVALUATION, quiet_days=30), now=NOW, days=30)
    assert not is_inactive(quiet_state(DealStage.EVALUATION, quiet_days=2), now=NOW, days=30)
    assert not is_inactive(quiet_state(DealStage.EVALUATION, quiet_days=None), now=NOW, days=30)


def after_turn(
    state: ConversationState, result: ExtractionResult, *, by_inactivity: bool = True
) -> NextVersion:
    """The version a new turn makes; `by_inactivity`: what the service looked up."""
    return version_from_turns(
        state, [new_turn()], result, extracted_turns=1, now=NOW, stalled_by_inactivity=by_inactivity
    )


def stalled_by_inactivity(stalled_from: DealStage, *, qualified: bool = False) -> ConversationState:
    return quiet_state(DealStage.STALLED, stalled_from=stalled_from, qualified=qualified)


def test_a_turn_resumes_a_deal_stalled_by_inactivity() -> None:
    version = after_turn(stalled_by_inactivity(DealStage.EVALUATION), proposing(None))
    resume = StageChange(
        from_stage=DealStage.STALLED,
        to_stage=DealStage.EVALUATION,
        accepted=True,
        reason=ACTIVITY_RESUMED,
    )
    assert version.resumed == resume and version.stage_change is None
    assert version.state.deal_stage is DealStage.EVALUATION
    assert version.state.stalled_from is None
    assert version.state.interaction_count == 5 and version.state.version == 8
    assert "deal_stage" in version.changed_fields
    event = update_event(version)
    assert event.previous_stage is DealStage.STALLED and event.stage_change == resume
    assert event.source == "turns"
    assert event.next_stage == gap_report(version.state, DEFAULT_CRITERIA)


def test_a_failed_extraction_still_resumes_the_deal() -> None:
    version = after_turn(stalled_by_inactivity(DealStage.DISCOVERY), FAILED)
    assert version.state.deal_stage is DealStage.DISCOVERY
    assert version.resumed is not None and version.resumed.reason == ACTIVITY_RESUMED


def test_the_proposal_is_judged_from_the_resumed_stage() -> None:
    """Stalled from discovery: qualification is the next step (criteria met), negotiation a
    skip counted from discovery; `stalled` itself would need no resume to be proposed."""
    before = stalled_by_inactivity(DealStage.DISCOVERY, qualified=True)
    advanced = after_turn(before, proposing(DealStage.QUALIFICATION))
    assert advanced.resumed is not None and advanced.resumed.to_stage is DealStage.DISCOVERY
    step = StageMove(
        from_stage=DealStage.DISCOVERY,
        to_stage=DealStage.QUALIFICATION,
        accepted=True,
        reason="the model says so",
    )
    assert advanced.stage_change == StageChange(**step.model_dump(), steps=[step])
    assert advanced.state.deal_stage is DealStage.QUALIFICATION
    event = update_event(advanced)
    assert event.previous_stage is DealStage.STALLED
    assert event.stage_change == advanced.stage_change, "the proposal, judged after the resume"

    skipped = after_turn(before, proposing(DealStage.NEGOTIATION))
    assert skipped.stage_change is not None and not skipped.stage_change.accepted
    assert skipped.stage_change.reason == (
        "discovery -> negotiation: skips qualification, evaluation"
    )
    assert skipped.state.deal_stage is DealStage.DISCOVERY


def test_a_resumed_deal_must_meet_the_criteria_to_advance() -> None:
    version = after_turn(
        stalled_by_inactivity(DealStage.DISCOVERY), proposing(DealStage.QUALIFICATION)
    )
    assert version.stage_change is not None and not version.stage_change.accepted
    assert version.stage_change.reason == (
        "discovery -> qualification: missing need, identify_pain"
    )
    assert version.state.deal_stage is DealStage.DISCOVERY
    assert version.next_stage == NextStage(
        stage=DealStage.QUALIFICATION, missing=[Dimension.NEED, Dimension.IDENTIFY_PAIN]
    )


def test_a_deal_stalled_otherwise_stays_stalled_on_a_turn() -> None:
    """Stalled by the AI or by a person: the next turn's proposal is judged from `stalled`."""
    before = stalled_by_inactivity(DealStage.EVALUATION)
    version = after_turn(before, proposing(None), by_inactivity=False)
    assert version.resumed is None and version.stage_change is None
    assert version.state.deal_stage is DealStage.STALLED
    assert version.state.stalled_from is DealStage.EVALUATION
    assert "deal_stage" not in version.changed_fields
