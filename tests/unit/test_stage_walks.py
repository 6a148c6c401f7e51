"""Stage walks (CONTRACT.md section 4, v3) and the evidence rules of issue 18 part 5: the AI
moves a deal only on quotes that stand in the turns, one legal step at a time."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas import (
    BANTSignals,
    Channel,
    ConversationState,
    DealStage,
    MEDDICSignals,
    QualificationExtraction,
    Speaker,
    StageMove,
    StageStep,
)
from tests.builders import state_at, turn_texts
from worker.extract.evidence import verify_evidence
from worker.extract.port import ExtractionResult, TurnText
from worker.qualify.commit import stage_records, update_event
from worker.qualify.versioning import NextVersion, version_from_reextraction

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
PAIN = "Our month-end close takes nine days and the auditors complained."
NEED = "We need invoice matching that runs on its own."
MONEY = "We have $60k approved for this."
DECIDER = "I'm the CFO and I sign off on it."
WHEN = "We want it live by March."
BUYER = "The budget is mine, I'm the one who approves it."
CRITERIA = "It must integrate with NetSuite."
PROCESS = "Procurement runs a security review, then I sign."
LOST = "We decided to go with another vendor."
REP_LOST = "Sounds like you went with another vendor."


TURNS = turn_texts(
    [
        (Speaker.PROSPECT, f"{PAIN} {NEED}"),
        (Speaker.PROSPECT, f"{MONEY} {DECIDER} {WHEN}"),
        (Speaker.PROSPECT, f"{BUYER} {CRITERIA} {PROCESS}"),
        (Speaker.REP, REP_LOST),
        (Speaker.PROSPECT, LOST),
    ],
    channel=Channel.CALL,
    start=NOW,
)


def everything_shown() -> QualificationExtraction:
    """Every dimension negotiation requires, each with its verbatim quote."""
    return QualificationExtraction(
        bant=BANTSignals(
            budget_identified=True,
            budget_confidence=0.9,
            budget_evidence=[MONEY],
            authority_identified=True,
            authority_confidence=0.9,
            authority_evidence=[DECIDER],
            need_identified=True,
            need_confidence=0.9,
            need_evidence=[NEED],
            timeline_identified=True,
            timeline_confidence=0.9,
            timeline_evidence=[WHEN],
        ),
        meddic=MEDDICSignals(
            identify_pain_identified=True,
            identify_pain_confidence=0.9,
            identify_pain_evidence=[PAIN],
            economic_buyer_identified=True,
            economic_buyer_confidence=0.9,
            economic_buyer_evidence=[BUYER],
            decision_criteria=["NetSuite"],
            decision_criteria_confidence=0.9,
            decision_criteria_evidence=[CRITERIA],
            decision_process_identified=True,
            decision_process_confidence=0.9,
            decision_process_evidence=[PROCESS],
        ),
    )


def step(stage: DealStage, quote: str) -> StageStep:
    return StageStep(stage=stage, reason=f"the model says {stage.value}", quote=quote)


TO_NEGOTIATION = [
    step(DealStage.DISCOVERY, NEED),
    step(DealStage.QUALIFICATION, PAIN),
    step(DealStage.EVALUATION, WHEN),
    step(DealStage.NEGOTIATION, PROCESS),
]


def reason_of(version: NextVersion) -> str:
    assert version.stage_change is not None
    return version.stage_change.reason


def steps_of(version: NextVersion) -> list[StageMove]:
    assert version.stage_change is not None
    return version.stage_change.steps


def judged(
    extraction: QualificationExtraction,
    stage: DealStage = DealStage.PROSPECTING,
    turns: list[TurnText] = TURNS,
) -> tuple[ConversationState, QualificationExtraction, NextVersion]:
    """The extraction through the evidence check, then the stage machine: the new state, the
    verified extraction and the version."""
    verified, _drops = verify_evidence(extraction, turns)
    result = ExtractionResult(status="ok", extraction=verified, model="m", prompt_version="p")
    version = version_from_reextraction(
        state_at(stage, version=2), result, extracted_turns=5, now=NOW
    )
    return version.state, verified, version


def test_a_whole_call_walks_to_negotiation_through_four_quoted_steps_in_one_version() -> None:
    extraction = everything_shown().model_copy(update={"stage_walk": TO_NEGOTIATION})

    state, _verified, version = judged(extraction)

    assert state.deal_stage is DealStage.NEGOTIATION and state.version == 3
    event = update_event(version)
    change = event.model_dump(mode="json", by_alias=True)["stage_change"]
    assert (change["from"], change["to"], change["accepted"]) == (
        "prospecting",
        "negotiation",
        True,
    )
    assert [(s["from"], s["to"], s["accepted"]) for s in change["steps"]] == [
        ("prospecting", "discovery", True),
        ("discovery", "qualification", True),
        ("qualification", "evaluation", True),
        ("evaluation", "negotiation", True),
    ]
    assert [s["reason"] for s in change["steps"]][-1] == "the model says negotiation"
    # One row of tenant.stage_transitions per step, in order.
    assert [(r.to_stage, step) for r, step in stage_records(version)] == [
        (s.stage, number) for number, s in enumerate(TO_NEGOTIATION, start=1)
    ]


def test_a_walk_stops_at_its_first_unevidenced_step_with_the_reason() -> None:
    invented = "We have signed off the whole budget already."
    walk = [*TO_NEGOTIATION[:2], step(DealStage.EVALUATION, invented), TO_NEGOTIATION[3]]
    extraction = everything_shown().model_copy(update={"stage_walk": walk})

    state, verified, version = judged(extraction)

    assert verified.stage_walk[2].quote is None  # not in any turn: dropped by the check
    assert state.deal_stage is DealStage.QUALIFICATION
    change = version.stage_change
    assert change is not None
    assert change.accepted and change.to_stage is DealStage.QUALIFICATION
    assert [(s.to_stage, s.accepted) for s in change.steps] == [
        (DealStage.DISCOVERY, True),
        (DealStage.QUALIFICATION, True),
        (DealStage.EVALUATION, False),  # negotiation after it is never judged
    ]
    assert change.steps[2].reason == (
        "qualification -> evaluation: no quote from the turns supports this step"
    )
    assert "stopped before evaluation" in change.reason


def test_a_walk_that_skips_a_stage_stops_there() -> None:
    walk = [TO_NEGOTIATION[0], TO_NEGOTIATION[2]]  # discovery, then evaluation
    extraction = everything_shown().model_copy(update={"stage_walk": walk})

    state, _verified, version = judged(extraction)

    assert state.deal_stage is DealStage.DISCOVERY
    assert version.stage_change is not None
    steps = version.stage_change.steps
    assert steps[-1].reason == "discovery -> evaluation: skips qualification"


def test_claims_without_surviving_quotes_identify_nothing_and_meet_no_criteria() -> None:
    """An injected "mark budget, authority and timeline identified" with invented quotes."""
    made_up = QualificationExtraction(
        bant=BANTSignals(
            budget_identified=True,
            budget_confidence=0.95,
            budget_range="$500k",
            budget_evidence=["Our budget is $500k."],
            authority_identified=True,
            authority_confidence=0.95,
            authority_evidence=[],
            timeline_identified=True,
            timeline_confidence=0.95,
            timeline_evidence=["Live next week."],
            need_identified=True,
            need_confidence=0.9,
            need_evidence=[NEED],
        ),
        meddic=MEDDICSignals(
            identify_pain_identified=True,
            identify_pain_confidence=0.9,
            identify_pain_evidence=[PAIN],
        ),
        stage_walk=[step(DealStage.EVALUATION, WHEN)],
    )

    state, verified, version = judged(made_up, DealStage.QUALIFICATION)

    # Every claim without a surviving quote is back at its defaults; the quoted need stays.
    assert verified.bant == BANTSignals(
        need_identified=True, need_confidence=0.9, need_evidence=[NEED]
    )
    assert not state.qualification.bant.budget_identified
    assert state.qualification.bant.budget_range is None
    assert state.deal_stage is DealStage.QUALIFICATION
    change = version.stage_change
    assert change is not None
    assert not change.accepted
    assert change.reason == "qualification -> evaluation: missing budget, authority, timeline"


def test_closed_lost_needs_a_quote_from_a_prospect_turn() -> None:
    rep_only = QualificationExtraction(stage_walk=[step(DealStage.CLOSED_LOST, REP_LOST)])
    invented = QualificationExtraction(
        stage_walk=[step(DealStage.CLOSED_LOST, "We are cancelling the project.")]
    )
    prospect = QualificationExtraction(stage_walk=[step(DealStage.CLOSED_LOST, LOST)])
    said_by_rep = [t for t in TURNS if t.speaker is Speaker.REP]

    rep_state, rep_verified, rep_version = judged(rep_only, DealStage.EVALUATION, said_by_rep)
    invented_state, _, invented_version = judged(invented, DealStage.EVALUATION)
    lost_state, lost_verified, _ = judged(prospect, DealStage.EVALUATION)

    assert rep_verified.stage_walk[0].speaker is Speaker.REP
    assert rep_state.deal_stage is DealStage.EVALUATION
    assert reason_of(rep_version) == (
        "evaluation -> closed_lost: closing as lost needs a quote from a prospect turn; "
        "the quote is the rep's"
    )
    assert invented_state.deal_stage is DealStage.EVALUATION
    assert reason_of(invented_version) == (
        "evaluation -> closed_lost: closing as lost needs a quote from a prospect turn; "
        "none was found in the turns"
    )
    # The same words said by the prospect (the rep said them too): a prospect's quote.
    assert lost_verified.stage_walk[0].speaker is Speaker.PROSPECT
    assert lost_state.deal_stage is DealStage.CLOSED_LOST


def test_a_walk_through_to_closed_lost_needs_the_prospects_words_at_its_last_step() -> None:
    walk = [TO_NEGOTIATION[0], step(DealStage.CLOSED_LOST, REP_LOST)]
    extraction = everything_shown().model_copy(update={"stage_walk": walk})
    said_by_rep = [*TURNS[:3], TURNS[3]]  # the prospect never says it

    state, _verified, version = judged(extraction, turns=said_by_rep)

    assert state.deal_stage is DealStage.DISCOVERY
    assert version.stage_change is not None
    steps = version.stage_change.steps
    assert [(s.to_stage, s.accepted) for s in steps] == [
        (DealStage.DISCOVERY, True),
        (DealStage.CLOSED_LOST, False),
    ]


def test_a_bare_suggested_stage_is_a_one_step_walk_but_cannot_close_as_lost() -> None:
    advance = everything_shown().model_copy(
        update={"suggested_stage": DealStage.DISCOVERY, "stage_reason": "a need"}
    )
    lose = QualificationExtraction(suggested_stage=DealStage.CLOSED_LOST, stage_reason="gone")

    advanced, _, advanced_version = judged(advance)
    kept, _, lost_version = judged(lose, DealStage.EVALUATION)

    assert advanced.deal_stage is DealStage.DISCOVERY
    assert len(steps_of(advanced_version)) == 1
    assert kept.deal_stage is DealStage.EVALUATION
    assert "needs a quote from a prospect turn" in reason_of(lost_version)


def test_a_walk_that_only_stays_put_is_no_proposal() -> None:
    stay = QualificationExtraction(stage_walk=[step(DealStage.EVALUATION, WHEN)])

    state, _, version = judged(stay, DealStage.EVALUATION, turns=TURNS)

    assert state.deal_stage is DealStage.EVALUATION
    assert version.stage_change is None
