"""The rules v2 vocabulary: each pattern with a sentence it must find and a near miss it must not.

Where the sentences come from (checked against examples/eval/ with a script on 2026-12-04): they
were written with the patterns, while tuning them on the development part of the evaluation
dataset, and most come from it. Of the 24 sentences to find in the first table, 5 are part of a
development line verbatim (e19, e38, e40, e41 twice), 17 are a development line shortened or
reworded (e02 twice, e07, e09 twice, e11, e13, e16 with e18, e17, e27 with e28, e36, e37, e39,
e40 twice, e41, e42) and 2 are new. Further down, the spending freeze is reworded from e34, the
past hold and the return after going dark from e32, and the spreadsheet loss is e31 verbatim; the
other sentences there are new. Most near misses are new; a few restate a fact of the same
conversation ("Tenemos 120 camiones." is part of an e41 line). None is a line of the held-out
part (held_out.jsonl): passing here says nothing about conversations the rules were not written
from."""

from __future__ import annotations

import pytest

from schemas import (
    DealStage,
    Dimension,
    NextStage,
    QualificationExtraction,
    QualificationState,
    Speaker,
    is_identified,
)
from tests.builders import turn_texts
from worker.extract.rules import exchanges, extract, stage_walk


def prospect_says(text: str, stage: DealStage = DealStage.DISCOVERY) -> QualificationExtraction:
    return extract(turn_texts(((Speaker.PROSPECT, text),)), QualificationState(), stage)


@pytest.mark.parametrize(
    ("dimension", "found", "near_miss"),
    [
        (Dimension.TIMELINE, "We'd like to be live by 1 April.", "We opened on 1 April 2019."),
        (Dimension.TIMELINE, "Ideally live by 15 dec.", "We hired 15 people in December."),
        (Dimension.TIMELINE, "Go-live is September 1st.", "We moved offices last September."),
        (Dimension.TIMELINE, "Wir wollen bis Ende März entscheiden.", "Wir sind 380 Leute."),
        (Dimension.TIMELINE, "Lo queremos antes del 1 de marzo.", "Tenemos 120 camiones."),
        (Dimension.TIMELINE, "want it done b4 q3", "q3 was rough for us"),
        (Dimension.ECONOMIC_BUYER, "Our owner, Walt. He signs every contract.", "He is nice."),
        (Dimension.ECONOMIC_BUYER, "Moira makes the budget call and she signs.", "She sings."),
        (Dimension.ECONOMIC_BUYER, "Our COO owns the technology budget now.", "Our COO is new."),
        (Dimension.ECONOMIC_BUYER, "Any contract goes through her.", "The email goes to her."),
        (Dimension.AUTHORITY, "Yo soy la jefa de flota y la que elige proveedor.", "Yo soy Ana."),
        (Dimension.IDENTIFY_PAIN, "Reps juggle three tools per quote.", "We use tools."),
        (Dimension.IDENTIFY_PAIN, "It takes two people a full week to reconcile.", "We are two."),
        (Dimension.IDENTIFY_PAIN, "Scheduling is still done in Excel.", "The demo was excellent."),
        (Dimension.IDENTIFY_PAIN, "Le moteur de recherche est catastrophique.", "Bonjour à tous."),
        (Dimension.IDENTIFY_PAIN, "El gasto en combustible se ha disparado.", "Somos una flota."),
        (Dimension.IDENTIFY_PAIN, "Die Nachweise fehlten.", "Wir sind drei Häuser."),
        (Dimension.NEED, "We're looking into phishing training.", "We looked at the weather."),
        (Dimension.NEED, "Nous voulons une seule plateforme.", "Nous sommes 45 magasins."),
        (Dimension.CHAMPION, "Tariq is very keen on it.", "Tariq is here."),
        (Dimension.CHAMPION, "Julien porte le projet en interne.", "Julien est en vacances."),
        (Dimension.CHAMPION, "My manager keeps pushing it.", "My manager keeps a diary."),
        (Dimension.DECISION_CRITERIA, "Outlook integration and a fixed price.", "Outlook is down."),
        (Dimension.DECISION_CRITERIA, "La compatibilité avec Salesforce.", "Salesforce est cher."),
    ],
)
def test_a_common_phrasing_is_found_and_its_near_miss_is_not(
    dimension: Dimension, found: str, near_miss: str
) -> None:
    assert is_identified(prospect_says(found), dimension)
    assert not is_identified(prospect_says(near_miss), dimension)


def test_a_pain_implies_the_need_to_fix_it_but_less_surely_than_a_stated_need() -> None:
    from_pain = prospect_says("Our invoices are re-keyed by hand every day.")
    stated = prospect_says("We need an invoice capture tool.")

    assert from_pain.bant.need_identified and stated.bant.need_identified
    assert from_pain.bant.need_confidence < stated.bant.need_confidence


def test_a_date_in_a_must_clause_is_a_timeline_not_a_criterion() -> None:
    found = prospect_says("We need to have something live by the end of Q3.")

    assert found.bant.timeline_identified
    assert found.meddic.decision_criteria == []


@pytest.mark.parametrize(
    ("said", "stalls"),
    [
        ("Let's put this on hold until next year.", True),
        ("We just got a spending freeze. Nothing gets bought until further notice.", True),
        ("Everything was on hold in June, but we're back on now.", False),
        ("We can hold the meeting on Tuesday.", False),
    ],
)
def test_pausing_words_propose_stalled_and_a_past_pause_does_not(said: str, stalls: bool) -> None:
    found = prospect_says(said, DealStage.QUALIFICATION)

    assert (found.suggested_stage is DealStage.STALLED) is stalls


def test_a_stalled_deal_resumes_to_the_gap_reports_stage_when_the_prospect_is_back() -> None:
    back = ((Speaker.PROSPECT, "Sorry for going dark. We need a shared calendar, it's back on."),)
    gaps = NextStage(stage=DealStage.EVALUATION, missing=[])

    found = extract(turn_texts(back), QualificationState(), DealStage.STALLED, next_stage=gaps)
    silent = extract(turn_texts(back), QualificationState(), DealStage.STALLED)

    assert found.suggested_stage is DealStage.EVALUATION
    assert silent.suggested_stage is None  # without a gap report, where it stalled is unknown


def test_sticking_with_what_they_have_is_a_lost_deal() -> None:
    found = prospect_says("We'll stick with the spreadsheet for now.", DealStage.EVALUATION)

    assert found.suggested_stage is DealStage.CLOSED_LOST


def test_one_extraction_walks_every_stage_step_its_content_supports() -> None:
    call = turn_texts(
        (
            (Speaker.REP, "What brings you here?"),
            (Speaker.PROSPECT, "Our invoices are keyed in by hand and it's a nightmare."),
            (Speaker.REP, "Who decides, and is there a budget?"),
            (Speaker.PROSPECT, "I'm the CFO and it's my call. We've set aside $40k."),
            (Speaker.REP, "Timing?"),
            (Speaker.PROSPECT, "We want it live by 1 March."),
            (Speaker.REP, "Great."),
        )
    )

    walk = stage_walk(call, QualificationState(), DealStage.PROSPECTING)

    assert [len(chunk) for chunk in exchanges(call)] == [2, 2, 2, 1]
    # The first answer shows a pain (so a need too): discovery and qualification; the timing
    # completes budget, authority and timeline: evaluation. Each step quotes the prospect.
    assert [step.stage for step in walk] == [
        DealStage.DISCOVERY,
        DealStage.QUALIFICATION,
        DealStage.EVALUATION,
    ]
    assert [step.quote for step in walk] == [
        "Our invoices are keyed in by hand and it's a nightmare.",
        "Our invoices are keyed in by hand and it's a nightmare.",
        "We want it live by 1 March.",
    ]
    assert {step.speaker for step in walk} == {Speaker.PROSPECT}
    assert extract(call, QualificationState(), DealStage.PROSPECTING).stage_walk == walk


def test_small_talk_walks_nowhere() -> None:
    talk = turn_texts(
        ((Speaker.PROSPECT, "Hi!"), (Speaker.REP, "Hello!"), (Speaker.PROSPECT, "Bye!"))
    )

    assert stage_walk(talk, QualificationState(), DealStage.PROSPECTING) == []
