"""The offline rule-based extractor: what it finds, what it ignores, what it proposes."""

from __future__ import annotations

import subprocess
import sys

from schemas import BANTSignals, DealStage, QualificationState, Speaker
from tests.builders import turn_texts
from worker.extract.rules import RULES_VERSION, RulesExtractor, extract, sentences

DISCOVERY_CALL = (
    (Speaker.REP, "Thanks for taking the call, Priya. What prompted you to reach out?"),
    (
        Speaker.PROSPECT,
        "Honestly, our SDRs are struggling. Lead routing is done manually in spreadsheets "
        "and we lose about 15 hours a week to it.",
    ),
    (Speaker.REP, "That sounds painful. Do you have a budget in mind?"),
    (Speaker.PROSPECT, "We have a budget of $40k-$60k per year set aside for this."),
    (Speaker.PROSPECT, "We need to have something live by the end of Q3 2025."),
)
SMALL_TALK = (
    (Speaker.PROSPECT, "Hi! How was your weekend?"),
    (Speaker.REP, "Great, thanks. We went hiking. You?"),
    (Speaker.PROSPECT, "Lovely weather here too. No problem at all, talk soon!"),
)


def prospect_text(lines: tuple[tuple[Speaker, str], ...]) -> str:
    return "\n".join(text for speaker, text in lines if speaker is Speaker.PROSPECT)


def test_finds_budget_timeline_and_pain_in_a_discovery_call() -> None:
    found = extract(turn_texts(DISCOVERY_CALL), QualificationState(), DealStage.PROSPECTING)

    assert found.bant.budget_identified and found.bant.budget_range == "$40k-$60k"
    assert found.bant.budget_evidence == [
        "We have a budget of $40k-$60k per year set aside for this."
    ]
    assert found.bant.timeline_identified
    assert "Q3 2025" in (found.bant.timeline_description or "")
    assert found.meddic.identify_pain_identified
    assert found.meddic.identify_pain_evidence[0].startswith("Honestly, our SDRs are struggling.")
    assert found.meddic.metrics_identified  # "15 hours a week"
    assert found.bant.need_identified


def test_evidence_is_verbatim_prospect_text() -> None:
    found = extract(turn_texts(DISCOVERY_CALL), QualificationState(), DealStage.PROSPECTING)
    said_by_prospect = prospect_text(DISCOVERY_CALL)

    quotes = [
        quote
        for signals in (found.bant, found.meddic)
        for name, value in signals
        if name.endswith("_evidence")
        for quote in value
    ]
    assert quotes
    assert all(quote in said_by_prospect for quote in quotes)


def test_small_talk_yields_nothing() -> None:
    found = extract(turn_texts(SMALL_TALK), QualificationState(), DealStage.PROSPECTING)

    assert found.bant == BANTSignals()
    assert not any(value for name, value in found.meddic if name.endswith("_evidence"))
    assert found.key_insights == []
    assert found.suggested_stage is None
    assert found.overall_confidence == 0.0


def test_rep_statements_are_not_evidence_of_the_prospect() -> None:
    said = "We have a budget of $20k a year and we need it live by the end of Q2 2026."

    by_prospect = extract(
        turn_texts(((Speaker.PROSPECT, said),)), QualificationState(), DealStage.PROSPECTING
    )
    by_rep = extract(
        turn_texts(((Speaker.REP, said),)), QualificationState(), DealStage.PROSPECTING
    )

    # The same sentence is a budget and a timeline when the prospect says it...
    assert by_prospect.bant.budget_identified and by_prospect.bant.budget_range == "$20k"
    assert by_prospect.bant.timeline_identified
    # ...and neither when the rep does.
    assert not by_rep.bant.budget_identified and not by_rep.bant.timeline_identified


def test_proposes_discovery_once_a_need_shows() -> None:
    found = extract(turn_texts(DISCOVERY_CALL), QualificationState(), DealStage.PROSPECTING)

    assert found.stage_walk[0].stage is DealStage.DISCOVERY
    assert found.stage_walk[0].reason and found.stage_walk[0].quote
    assert found.suggested_stage is found.stage_walk[-1].stage  # the walk's end


def test_proposes_qualification_only_with_a_need_and_a_pain() -> None:
    """The stage machine's criteria for qualification: need and identify_pain."""
    need_only = ((Speaker.PROSPECT, "We need a shared calendar for the team."),)
    without_pain = extract(turn_texts(need_only), QualificationState(), DealStage.DISCOVERY)
    with_pain = extract(turn_texts(DISCOVERY_CALL), QualificationState(), DealStage.DISCOVERY)

    assert without_pain.bant.need_identified and not without_pain.meddic.identify_pain_identified
    assert without_pain.suggested_stage is None
    assert with_pain.suggested_stage is DealStage.QUALIFICATION


def test_proposes_evaluation_only_with_budget_authority_and_timeline() -> None:
    call = turn_texts(DISCOVERY_CALL)  # need, pain, budget and timeline; nobody decides yet
    without_authority = extract(call, QualificationState(), DealStage.QUALIFICATION)
    decider = ((Speaker.PROSPECT, "I'm the VP of Sales and the final decision is mine."),)
    with_authority = extract(
        [*call, *turn_texts(decider)], QualificationState(), DealStage.QUALIFICATION
    )

    assert without_authority.suggested_stage is None
    assert with_authority.bant.authority_identified
    assert with_authority.bant.authority_role == "VP of Sales"
    assert with_authority.suggested_stage is DealStage.EVALUATION


def test_finds_decision_criteria_named_as_requirements() -> None:
    criteria = ((Speaker.PROSPECT, "It must integrate with HubSpot and support SSO."),)

    found = extract(turn_texts(criteria), QualificationState(), DealStage.QUALIFICATION)

    assert found.meddic.decision_criteria == ["integrate with HubSpot", "SSO"]


EVERYTHING = (
    *DISCOVERY_CALL,
    (Speaker.PROSPECT, "I'm the VP of Sales and the final decision is mine."),
    (Speaker.PROSPECT, "Our CFO approves the budget. Procurement runs a security review."),
    (Speaker.PROSPECT, "It must integrate with HubSpot and support SSO."),
)


def test_never_proposes_a_skip() -> None:
    """Each step of a walk is one stage past the one before, from the current stage on."""
    for stage in DealStage:
        found = extract(turn_texts(EVERYTHING), QualificationState(), stage)
        previous = stage
        for step in found.stage_walk:
            assert _next(previous) is step.stage
            previous = step.stage


def test_walks_up_to_negotiation_and_never_beyond() -> None:
    """Every stage as the current one, with every dimension shown: the rules walk a deal one
    step at a time up to negotiation in one extraction; closing and stalling need explicit
    words (a win, a loss), and a closed or stalled deal gets no proposal from qualification
    signals alone."""
    # The rep speaks between the prospect's answers: each answer is an exchange of its own,
    # and an exchange takes one step at most (what one extraction per exchange would take).
    call = turn_texts(
        tuple(line for said in EVERYTHING for line in ((Speaker.REP, "Go on."), said))
    )
    walks = {
        stage: [s.stage for s in extract(call, QualificationState(), stage).stage_walk]
        for stage in DealStage
    }
    forward = list(DealStage)[1:5]

    assert walks == {
        DealStage.PROSPECTING: forward,
        DealStage.DISCOVERY: forward[1:],
        DealStage.QUALIFICATION: forward[2:],
        DealStage.EVALUATION: forward[3:],
        DealStage.NEGOTIATION: [],
        DealStage.CLOSED_WON: [],
        DealStage.CLOSED_LOST: [],
        DealStage.STALLED: [],
    }


def test_proposes_negotiation_when_the_decision_process_completes_the_criteria() -> None:
    signer = ((Speaker.PROSPECT, "Our CFO, Dana Reyes, signs the contract."),)
    known = extract(
        turn_texts((*EVERYTHING[:-2], *signer)), QualificationState(), DealStage.EVALUATION
    )
    state = QualificationState(bant=known.bant, meddic=known.meddic)
    process = ((Speaker.PROSPECT, "Procurement runs a security review before any contract."),)
    criteria = ((Speaker.PROSPECT, "It must integrate with HubSpot and support SSO."),)

    process_only = extract(turn_texts(process), state, DealStage.EVALUATION)
    both = extract(turn_texts((*process, *criteria)), state, DealStage.EVALUATION)

    assert process_only.meddic.decision_process_identified
    assert process_only.suggested_stage is None  # decision criteria still missing
    assert both.suggested_stage is DealStage.NEGOTIATION


def _next(stage: DealStage) -> DealStage | None:
    order = list(DealStage)[:5]
    return order[order.index(stage) + 1] if stage in order[:-1] else None


def test_known_state_counts_towards_the_stage_and_the_questions() -> None:
    known = QualificationState(
        bant=BANTSignals(
            authority_identified=True,
            authority_confidence=0.7,
            need_identified=True,
            need_confidence=0.6,
        )
    )
    pain_and_budget = (
        (Speaker.PROSPECT, "Our invoices are keyed in by hand. We have a budget of $50k for this."),
    )

    found = extract(turn_texts(pain_and_budget), known, DealStage.DISCOVERY)

    assert found.suggested_stage is DealStage.QUALIFICATION
    assert not any("budget" in q.lower() for q in found.recommended_next_questions)


def test_sentences_are_substrings_of_the_text() -> None:
    text = "We pay $1.5M a year. Is that a lot?\nMaybe! Q3 works."

    parts = sentences(text)

    assert parts == ["We pay $1.5M a year.", "Is that a lot?", "Maybe!", "Q3 works."]
    assert all(part in text for part in parts)


def test_run_on_sentences_are_cut_into_clauses() -> None:
    run_on = "Well, " + "and so on, " * 40 + "we have a budget of $30k, more or less"

    found = extract(
        turn_texts(((Speaker.PROSPECT, run_on),)), QualificationState(), DealStage.DISCOVERY
    )

    assert found.bant.budget_evidence == ["we have a budget of $30k,"]


async def test_rules_extractor_reports_an_ok_free_result() -> None:
    extractor = RulesExtractor()

    result = await extractor.extract_signals(
        turn_texts(DISCOVERY_CALL), QualificationState(), DealStage.PROSPECTING
    )

    assert result.status == "ok" and result.extraction is not None
    assert (result.model, result.prompt_version, result.cost_usd) == ("rules", RULES_VERSION, 0.0)


def test_importing_the_rules_loads_no_llm_library() -> None:
    probe = (
        "import sys, worker.extract.rules; "
        "print(sorted({'litellm', 'instructor'} & set(sys.modules)))"
    )

    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout

    assert output.strip() == "[]"
