"""Exit criteria, the gap report (next_stage) and the STAGE_CRITERIA setting (CONTRACT.md s. 4)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from schemas import (
    BANTSignals,
    DealStage,
    Dimension,
    MEDDICSignals,
    NextStage,
    QualificationState,
)
from worker.errors import ConfigurationError
from worker.qualify.criteria import (
    DEFAULT_CRITERIA,
    NO_CRITERIA,
    StageCriteria,
    judge_ai_proposal,
    missing_for,
    next_stage,
    parse_stage_criteria,
)
from worker.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]

# The contract's default table, each stage's own list (before accumulation).
OWN_DEFAULT: dict[str, list[str]] = {
    "discovery": [],
    "qualification": ["need", "identify_pain"],
    "evaluation": ["budget", "authority", "timeline"],
    "negotiation": ["economic_buyer", "decision_criteria", "decision_process"],
    "closed_won": [],
}


def known(*dimensions: str) -> QualificationState:
    """A qualification in which exactly `dimensions` are identified."""
    bant: dict[str, object] = {}
    meddic: dict[str, object] = {}
    for name in dimensions:
        if name == "decision_criteria":
            meddic["decision_criteria"] = ["SOC 2"]
        elif name in {"budget", "authority", "need", "timeline"}:
            bant[f"{name}_identified"] = True
        else:
            meddic[f"{name}_identified"] = True
    return QualificationState(bant=BANTSignals(**bant), meddic=MEDDICSignals(**meddic))


# --- the default table ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "required"),
    [
        ("prospecting", []),
        ("discovery", []),
        ("qualification", ["need", "identify_pain"]),
        ("evaluation", ["need", "identify_pain", "budget", "authority", "timeline"]),
        (
            "negotiation",
            [
                "need",
                "identify_pain",
                "budget",
                "authority",
                "timeline",
                "economic_buyer",
                "decision_criteria",
                "decision_process",
            ],
        ),
        (
            "closed_won",
            [
                "need",
                "identify_pain",
                "budget",
                "authority",
                "timeline",
                "economic_buyer",
                "decision_criteria",
                "decision_process",
            ],
        ),
        ("stalled", []),
        ("closed_lost", []),
    ],
)
def test_a_stage_requires_its_own_dimensions_and_those_of_the_stages_before_it(
    stage: str, required: list[str]
) -> None:
    assert [d.value for d in DEFAULT_CRITERIA.required(DealStage(stage))] == required


def test_missing_lists_what_the_qualification_lacks_in_requirement_order() -> None:
    qualification = known("need", "authority")
    assert missing_for(DealStage.EVALUATION, qualification, DEFAULT_CRITERIA) == [
        Dimension.IDENTIFY_PAIN,
        Dimension.BUDGET,
        Dimension.TIMELINE,
    ]


# --- judging an AI proposal ----------------------------------------------------------------


def test_a_move_to_evaluation_without_budget_is_rejected_naming_budget() -> None:
    merged = known("need", "identify_pain", "authority", "timeline")
    verdict = judge_ai_proposal(DealStage.QUALIFICATION, None, DealStage.EVALUATION, merged)
    assert not verdict.accepted
    assert verdict.reason == "qualification -> evaluation: missing budget"


def test_a_move_to_evaluation_with_everything_it_requires_is_accepted() -> None:
    merged = known("budget", "authority", "timeline", "need", "identify_pain")
    verdict = judge_ai_proposal(DealStage.QUALIFICATION, None, DealStage.EVALUATION, merged)
    assert verdict.accepted
    assert verdict.stalled_from is None


def test_the_rejection_names_every_missing_dimension() -> None:
    verdict = judge_ai_proposal(
        DealStage.DISCOVERY, None, DealStage.QUALIFICATION, known("need"), DEFAULT_CRITERIA
    )
    assert not verdict.accepted
    assert verdict.reason == "discovery -> qualification: missing identify_pain"


def test_winning_requires_everything_negotiation_required() -> None:
    merged = known("need", "identify_pain", "budget", "authority", "timeline", "economic_buyer")
    verdict = judge_ai_proposal(DealStage.NEGOTIATION, None, DealStage.CLOSED_WON, merged)
    assert (
        verdict.reason == "negotiation -> closed_won: missing decision_criteria, decision_process"
    )


def test_the_stage_machine_speaks_before_the_criteria() -> None:
    verdict = judge_ai_proposal(
        DealStage.PROSPECTING, None, DealStage.EVALUATION, known(), DEFAULT_CRITERIA
    )
    assert verdict.reason == "prospecting -> evaluation: skips discovery, qualification"


@pytest.mark.parametrize(
    ("stage", "stalled_from", "proposed"),
    [
        (DealStage.EVALUATION, None, DealStage.STALLED),
        (DealStage.EVALUATION, None, DealStage.CLOSED_LOST),
        (DealStage.STALLED, DealStage.EVALUATION, DealStage.CLOSED_LOST),
        (DealStage.STALLED, DealStage.EVALUATION, DealStage.EVALUATION),
        (DealStage.STALLED, DealStage.EVALUATION, DealStage.DISCOVERY),
    ],
)
def test_stalling_losing_and_resuming_need_no_criteria(
    stage: DealStage, stalled_from: DealStage | None, proposed: DealStage
) -> None:
    verdict = judge_ai_proposal(stage, stalled_from, proposed, known(), DEFAULT_CRITERIA)
    assert verdict.accepted, verdict.reason


def test_resuming_one_step_past_stalled_from_needs_that_stages_criteria() -> None:
    lacking = judge_ai_proposal(
        DealStage.STALLED, DealStage.DISCOVERY, DealStage.QUALIFICATION, known("need")
    )
    assert not lacking.accepted
    assert lacking.reason == "stalled -> qualification: missing identify_pain"
    assert lacking.stalled_from is DealStage.DISCOVERY  # rejected: the state stays as it was

    having = judge_ai_proposal(
        DealStage.STALLED,
        DealStage.DISCOVERY,
        DealStage.QUALIFICATION,
        known("need", "identify_pain"),
    )
    assert having.accepted
    assert having.stalled_from is None  # the deal left stalled


def test_stalling_remembers_where_the_deal_stalled_from() -> None:
    verdict = judge_ai_proposal(DealStage.EVALUATION, None, DealStage.STALLED, known())
    assert verdict.stalled_from is DealStage.EVALUATION


def test_with_criteria_off_the_stage_machine_alone_decides() -> None:
    accepted = judge_ai_proposal(
        DealStage.NEGOTIATION, None, DealStage.CLOSED_WON, known(), NO_CRITERIA
    )
    assert accepted.accepted
    skip = judge_ai_proposal(DealStage.DISCOVERY, None, DealStage.EVALUATION, known(), NO_CRITERIA)
    assert not skip.accepted


# --- the gap report -------------------------------------------------------------------------


def test_next_stage_of_an_open_deal_is_the_following_stage_with_what_it_lacks() -> None:
    gaps = next_stage(DealStage.QUALIFICATION, None, known("need", "budget"), DEFAULT_CRITERIA)
    assert gaps == NextStage(
        stage=DealStage.EVALUATION,
        missing=[Dimension.IDENTIFY_PAIN, Dimension.AUTHORITY, Dimension.TIMELINE],
    )


def test_next_stage_after_negotiation_is_closed_won() -> None:
    gaps = next_stage(DealStage.NEGOTIATION, None, known(), DEFAULT_CRITERIA)
    assert gaps is not None and gaps.stage is DealStage.CLOSED_WON
    assert len(gaps.missing) == 8


def test_next_stage_of_a_stalled_deal_is_where_it_resumes() -> None:
    gaps = next_stage(DealStage.STALLED, DealStage.QUALIFICATION, known("need"), DEFAULT_CRITERIA)
    assert gaps == NextStage(stage=DealStage.QUALIFICATION, missing=[Dimension.IDENTIFY_PAIN])
    legacy = next_stage(DealStage.STALLED, None, known(), DEFAULT_CRITERIA)
    assert legacy == NextStage(stage=DealStage.PROSPECTING, missing=[])


def test_closed_deals_have_no_next_stage() -> None:
    assert next_stage(DealStage.CLOSED_WON, None, known(), DEFAULT_CRITERIA) is None
    assert next_stage(DealStage.CLOSED_LOST, None, known(), DEFAULT_CRITERIA) is None


def test_with_criteria_off_nothing_is_missing() -> None:
    assert next_stage(DealStage.DISCOVERY, None, known(), NO_CRITERIA) == NextStage(
        stage=DealStage.QUALIFICATION, missing=[]
    )


# --- parsing STAGE_CRITERIA -----------------------------------------------------------------


def test_the_default_table_is_the_contracts() -> None:
    own = {stage.value: [d.value for d in dims] for stage, dims in DEFAULT_CRITERIA.own}
    assert own == OWN_DEFAULT


def test_a_json_object_replaces_the_table_and_still_accumulates() -> None:
    criteria = parse_stage_criteria('{"qualification": ["need"], "evaluation": ["budget"]}')
    assert criteria.required(DealStage.EVALUATION) == (Dimension.NEED, Dimension.BUDGET)
    assert criteria.required(DealStage.NEGOTIATION) == (Dimension.NEED, Dimension.BUDGET)
    assert criteria.required(DealStage.DISCOVERY) == ()


@pytest.mark.parametrize("text", ["off", "OFF", " off "])
def test_off_disables_the_criteria(text: str) -> None:
    assert parse_stage_criteria(text) == NO_CRITERIA
    assert NO_CRITERIA.required(DealStage.CLOSED_WON) == ()


def test_an_empty_value_means_the_default_table() -> None:
    assert parse_stage_criteria("") == DEFAULT_CRITERIA


def test_load_settings_reads_stage_criteria_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STAGE_CRITERIA", '{"negotiation": ["champion"]}')
    criteria = load_settings().stage_criteria
    assert isinstance(criteria, StageCriteria)
    assert criteria.required(DealStage.CLOSED_WON) == (Dimension.CHAMPION,)
    monkeypatch.setenv("STAGE_CRITERIA", "off")
    assert load_settings().stage_criteria == NO_CRITERIA
    monkeypatch.delenv("STAGE_CRITERIA")
    assert load_settings().stage_criteria == DEFAULT_CRITERIA


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"evaluation": ["budget"', "not JSON"),
        ("budget", "not JSON"),
        ('["budget"]', "expected a JSON object"),
        ('{"evaluaton": ["budget"]}', "unknown stage 'evaluaton'"),
        ('{"stalled": ["budget"]}', "unknown stage 'stalled'"),
        ('{"prospecting": []}', "unknown stage 'prospecting'"),
        ('{"evaluation": ["budgt"]}', 'evaluation: unknown dimension "budgt"'),
        ('{"evaluation": [7]}', "evaluation: unknown dimension 7"),
        ('{"evaluation": "budget"}', 'evaluation: expected a list of dimensions, got "budget"'),
        ('{"evaluation": {"budget": true}}', "evaluation: expected a list of dimensions"),
    ],
)
def test_a_malformed_value_is_a_one_line_error_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, text: str, says: str
) -> None:
    monkeypatch.setenv("STAGE_CRITERIA", text)
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith("STAGE_CRITERIA: ")
    assert says in message
    assert "\n" not in message


def test_the_worker_refuses_to_start_with_a_malformed_value() -> None:
    env = {**os.environ, "STAGE_CRITERIA": '{"evaluation": "budget"}'}
    done = subprocess.run(
        [sys.executable, "-m", "worker", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "STAGE_CRITERIA" in lines[0]
    assert "Traceback" not in done.stderr
