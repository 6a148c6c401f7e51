"""MEDDPICC's paper process and competition (issue 20, part 1): the rules find them, overrides
set them, the pipeline shows them, and no stage requires them by default."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from schemas import (
    Actor,
    Channel,
    ConversationState,
    DealStage,
    MEDDICSignals,
    Owner,
    QualificationOverride,
    QualificationState,
    Speaker,
)
from tests.builders import turn_texts
from worker.extract.prompt import SYSTEM_PROMPTS
from worker.extract.rules import extract
from worker.qualify.criteria import DEFAULT_CRITERIA, parse_stage_criteria
from worker.qualify.merge import merge_meddic_signals
from worker.qualify.overrides import apply_override
from worker.tools.override import parse_sets
from worker.tools.views import PIPELINE_LEGEND, meddic_flags, render_pipeline

START = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
TENANT = uuid.uuid4()


def prospect_says(*texts: str) -> MEDDICSignals:
    turns = turn_texts(
        [(Speaker.PROSPECT, text) for text in texts], channel=Channel.EMAIL, start=START
    )
    return extract(turns, QualificationState(), DealStage.DISCOVERY).meddic


@pytest.mark.parametrize(
    "text",
    [
        "Legal needs to review the MSA before anything gets signed.",
        "Procurement usually takes about six weeks on our side.",
        "Any new vendor has to pass our security review first.",
        "Our lawyers will send redlines, then the CFO signs.",
    ],
)
def test_the_rules_find_the_paper_process(text: str) -> None:
    meddic = prospect_says(text)
    assert meddic.paper_process_identified is True
    assert meddic.paper_process_description == text
    assert meddic.paper_process_evidence == [text]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("We're also talking to Acme and Globex.", ["Acme", "Globex"]),
        (
            "We are comparing you with Initech, Hooli and Pied Piper.",
            ["Initech", "Hooli", "Pied Piper"],
        ),
        ("To be fair, we could build it ourselves.", ["in-house build"]),
        ("The alternative is to stay with our spreadsheets.", ["do nothing"]),
    ],
)
def test_the_rules_name_the_competitors(text: str, named: list[str]) -> None:
    meddic = prospect_says(text)
    assert meddic.competition_identified is True
    assert meddic.competitors == named


@pytest.mark.parametrize(
    "text",
    [
        "We're only talking to you at this point.",
        "We're not looking at anyone else.",
        "We're evaluating SSO support for the whole team.",
        "Our legacy tool crashes every week.",
    ],
)
def test_no_competition_is_found_where_there_is_none(text: str) -> None:
    meddic = prospect_says(text)
    assert meddic.competition_identified is False and meddic.competitors == []


def test_an_answer_that_there_is_no_one_else_identifies_no_competition() -> None:
    turns = turn_texts(
        [
            (Speaker.REP, "Are you looking at other vendors as well?"),
            (Speaker.PROSPECT, "No, nobody else at the moment."),
            (Speaker.REP, "Who else are you talking to?"),
            (Speaker.PROSPECT, "We have a demo from Initech next week."),
        ],
        channel=Channel.CALL,
        start=START,
    )
    meddic = extract(turns, QualificationState(), DealStage.DISCOVERY).meddic
    assert meddic.competitors == ["Initech"]
    assert meddic.competition_evidence == ["We have a demo from Initech next week."]


def test_competitors_extend_with_unique_items_like_decision_criteria() -> None:
    first = MEDDICSignals(
        competition_identified=True, competition_confidence=0.9, competitors=["Acme"]
    )
    later = MEDDICSignals(
        competition_identified=True, competition_confidence=0.5, competitors=["Acme", "do nothing"]
    )
    assert merge_meddic_signals(first, later).competitors == ["Acme", "do nothing"]


def test_both_are_in_the_prompt_and_no_default_stage_requires_them() -> None:
    for prompt in SYSTEM_PROMPTS.values():
        assert "- paper_process: how the contract gets signed" in prompt
        assert "- competition: who else is in the deal" in prompt
    required = {d for stage in DealStage for d in DEFAULT_CRITERIA.required(stage)}
    assert not {"paper_process", "competition"} & required
    custom = parse_stage_criteria('{"negotiation": ["paper_process", "competition"]}')
    assert custom.required(DealStage.NEGOTIATION) == ("paper_process", "competition")


def override(sets: dict[str, object]) -> QualificationOverride:
    return QualificationOverride.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "tenant_id": str(TENANT),
            "account_id": "acme",
            "contact_id": "ann",
            "actor": {"type": "user", "id": "rep-7"},
            "occurred_at": "2026-12-04T11:59:00+00:00",
            "set": sets,
        }
    )


def conversation(meddic: MEDDICSignals) -> ConversationState:
    return ConversationState(
        tenant_id=TENANT,
        account_id="acme",
        contact_id="ann",
        contact_email="ann@acme.example",
        qualification=QualificationState(meddic=meddic),
    )


def test_a_person_sets_competitors_and_clears_them_with_not_identified() -> None:
    sets = parse_sets(["competition.competitors=Acme", "competition.competitors=in-house build"])
    assert sets == {"competition": {"competitors": ["Acme", "in-house build"]}}
    result = apply_override(conversation(MEDDICSignals()), override(sets), now=START)
    assert result.state.qualification.meddic.competitors == ["Acme", "in-house build"]
    assert "competition" in result.state.owners
    assert "meddic.competition" in result.changed_fields

    cleared = apply_override(
        result.state, override({"competition": {"identified": False}}), now=START
    )
    meddic = cleared.state.qualification.meddic
    assert (meddic.competition_identified, meddic.competitors) == (False, [])


def test_the_pipeline_shows_the_meddpicc_letters() -> None:
    meddic = MEDDICSignals(paper_process_identified=True, competitors=[], metrics_identified=True)
    state = conversation(meddic).model_copy(
        update={"owners": {"competition": Owner(actor=Actor(type="user", id="r"), since=START)}}
    )
    assert meddic_flags(state) == "M·····P·*"
    table = render_pipeline(TENANT, [state]).splitlines()
    assert "MEDDICPC" in table[1]
    assert PIPELINE_LEGEND.startswith("BANT/MEDDICPC:")
    assert json.loads(state.model_dump_json())["qualification"]["meddic"]["competitors"] == []
