"""next_version applies the stage machine v2 and the exit criteria to the MERGED qualification."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas import (
    BANTSignals,
    DealStage,
    Dimension,
    MEDDICSignals,
    NextStage,
    QualificationExtraction,
    QualificationState,
)
from tests.builders import state_at
from worker.extract.port import ExtractionResult
from worker.qualify.criteria import NO_CRITERIA
from worker.qualify.update_event import update_event
from worker.qualify.versioning import version_from_reextraction

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


# A qualification whose need is identified.
NEED_KNOWN = QualificationState(bant=BANTSignals(need_identified=True))


def proposing(stage: DealStage, *, pain: bool = False) -> ExtractionResult:
    extraction = QualificationExtraction(
        meddic=MEDDICSignals(identify_pain_identified=pain, identify_pain_confidence=0.9),
        suggested_stage=stage,
        stage_reason="the model says so",
    )
    return ExtractionResult(status="ok", extraction=extraction, model="m", prompt_version="p")


def test_criteria_count_what_this_extraction_found() -> None:
    version = version_from_reextraction(
        state_at(DealStage.DISCOVERY, qualification=NEED_KNOWN),
        proposing(DealStage.QUALIFICATION, pain=True),
        extracted_turns=1,
        now=NOW,
    )
    assert version.stage_change is not None and version.stage_change.accepted
    assert version.stage_change.reason == "the model says so"
    assert version.state.deal_stage is DealStage.QUALIFICATION
    assert version.next_stage == NextStage(
        stage=DealStage.EVALUATION,
        missing=[Dimension.BUDGET, Dimension.AUTHORITY, Dimension.TIMELINE],
    )


def test_a_proposal_lacking_criteria_is_recorded_as_rejected_with_what_is_missing() -> None:
    version = version_from_reextraction(
        state_at(DealStage.DISCOVERY, qualification=NEED_KNOWN),
        proposing(DealStage.QUALIFICATION),
        extracted_turns=1,
        now=NOW,
    )
    assert version.stage_change is not None and not version.stage_change.accepted
    assert version.stage_change.reason == "discovery -> qualification: missing identify_pain"
    assert version.state.deal_stage is DealStage.DISCOVERY
    assert "deal_stage" not in version.changed_fields


def test_criteria_are_a_parameter() -> None:
    version = version_from_reextraction(
        state_at(DealStage.DISCOVERY),
        proposing(DealStage.QUALIFICATION),
        extracted_turns=1,
        now=NOW,
        criteria=NO_CRITERIA,
    )
    assert version.state.deal_stage is DealStage.QUALIFICATION
    assert version.next_stage == NextStage(stage=DealStage.EVALUATION, missing=[])


def test_stalling_records_stalled_from_and_resuming_clears_it() -> None:
    stalled = version_from_reextraction(
        state_at(DealStage.EVALUATION), proposing(DealStage.STALLED), extracted_turns=1, now=NOW
    )
    assert stalled.state.deal_stage is DealStage.STALLED
    assert stalled.state.stalled_from is DealStage.EVALUATION
    assert stalled.next_stage == NextStage(
        stage=DealStage.EVALUATION,
        missing=[
            Dimension.NEED,
            Dimension.IDENTIFY_PAIN,
            Dimension.BUDGET,
            Dimension.AUTHORITY,
            Dimension.TIMELINE,
        ],
    )

    resumed = version_from_reextraction(
        stalled.state, proposing(DealStage.EVALUATION), extracted_turns=1, now=NOW
    )
    assert resumed.stage_change is not None and resumed.stage_change.accepted
    assert resumed.state.deal_stage is DealStage.EVALUATION
    assert resumed.state.stalled_from is None


def test_a_rejected_resume_keeps_the_deal_stalled_from_where_it_was() -> None:
    state = state_at(DealStage.STALLED, stalled_from=DealStage.DISCOVERY)
    version = version_from_reextraction(
        state, proposing(DealStage.EVALUATION), extracted_turns=1, now=NOW
    )
    assert version.stage_change is not None and not version.stage_change.accepted
    assert version.stage_change.reason == (
        "stalled -> evaluation: skips qualification (stalled from discovery)"
    )
    assert version.state.deal_stage is DealStage.STALLED
    assert version.state.stalled_from is DealStage.DISCOVERY


def test_the_update_event_carries_the_gap_report() -> None:
    before = state_at(DealStage.DISCOVERY, qualification=NEED_KNOWN)
    result = proposing(DealStage.QUALIFICATION)
    version = version_from_reextraction(before, result, extracted_turns=1, now=NOW)
    event = update_event(version)
    payload = event.model_dump(mode="json", by_alias=True)
    assert payload["next_stage"] == {"stage": "qualification", "missing": ["identify_pain"]}
    rejected = {
        "from": "discovery",
        "to": "qualification",
        "accepted": False,
        "reason": "discovery -> qualification: missing identify_pain",
    }
    assert payload["stage_change"] == {**rejected, "steps": [rejected]}
