"""The deal-stage machine: every (from, to) pair against a table written out by hand."""

from __future__ import annotations

import itertools

import pytest

from schemas import DealStage
from worker.qualify.stages import VALID_TRANSITIONS, check_transition

# Written independently of worker.qualify.stages, from CONTRACT.md section 4 read literally.
ALLOWED: dict[str, set[str]] = {
    "prospecting": {"prospecting", "discovery", "stalled"},
    "discovery": {"discovery", "qualification", "stalled"},
    "qualification": {"qualification", "evaluation", "stalled"},
    "evaluation": {"evaluation", "negotiation", "stalled"},
    "negotiation": {"negotiation", "closed_won", "closed_lost", "stalled"},
    "closed_won": {"closed_won"},
    "closed_lost": {"closed_lost"},
    "stalled": {
        "stalled",
        "prospecting",
        "discovery",
        "qualification",
        "evaluation",
        "negotiation",
    },
}

ALL_PAIRS = list(itertools.product(DealStage, DealStage))
REJECTED_PAIRS = [(a, b) for a, b in ALL_PAIRS if b.value not in ALLOWED[a.value]]


def test_the_expected_table_covers_every_stage() -> None:
    assert set(ALLOWED) == {stage.value for stage in DealStage}
    assert len(ALL_PAIRS) == 64


@pytest.mark.parametrize(("from_stage", "to_stage"), ALL_PAIRS, ids=lambda s: s.value)
def test_transition_is_accepted_exactly_when_the_contract_allows_it(
    from_stage: DealStage, to_stage: DealStage
) -> None:
    expected = to_stage.value in ALLOWED[from_stage.value]
    assert check_transition(from_stage, to_stage).accepted is expected
    assert (to_stage in VALID_TRANSITIONS[from_stage]) is expected


@pytest.mark.parametrize(("from_stage", "to_stage"), ALL_PAIRS, ids=lambda s: s.value)
def test_every_reason_names_both_stages(from_stage: DealStage, to_stage: DealStage) -> None:
    reason = check_transition(from_stage, to_stage).reason
    assert reason.startswith(f"{from_stage.value} -> {to_stage.value}: ")
    assert len(reason) > len(f"{from_stage.value} -> {to_stage.value}: ")


def test_rejections_exist_and_all_have_reasons() -> None:
    assert len(REJECTED_PAIRS) == 64 - sum(len(targets) for targets in ALLOWED.values())
    for from_stage, to_stage in REJECTED_PAIRS:
        check = check_transition(from_stage, to_stage)
        assert check.reason.strip()
        assert from_stage.value in check.reason and to_stage.value in check.reason


def test_skipping_names_the_skipped_stages() -> None:
    check = check_transition(DealStage.PROSPECTING, DealStage.NEGOTIATION)
    assert not check.accepted
    assert check.reason == "prospecting -> negotiation: skips discovery, qualification, evaluation"


def test_closing_before_negotiation_is_a_skip() -> None:
    check = check_transition(DealStage.EVALUATION, DealStage.CLOSED_LOST)
    assert not check.accepted
    assert "skips negotiation" in check.reason


def test_closed_stages_are_terminal() -> None:
    for closed in (DealStage.CLOSED_WON, DealStage.CLOSED_LOST):
        check = check_transition(closed, DealStage.NEGOTIATION)
        assert not check.accepted
        assert f"{closed.value} is terminal" in check.reason


def test_staying_in_a_closed_stage_is_allowed() -> None:
    assert check_transition(DealStage.CLOSED_WON, DealStage.CLOSED_WON).accepted


def test_moving_backwards_is_rejected() -> None:
    check = check_transition(DealStage.EVALUATION, DealStage.DISCOVERY)
    assert not check.accepted
    assert "backwards" in check.reason


def test_a_stalled_deal_must_resume_before_it_closes() -> None:
    check = check_transition(DealStage.STALLED, DealStage.CLOSED_LOST)
    assert not check.accepted
    assert "only negotiation closes a deal" in check.reason


def test_valid_transitions_cannot_be_mutated() -> None:
    with pytest.raises(TypeError):
        VALID_TRANSITIONS[DealStage.PROSPECTING] = frozenset()  # type: ignore[index]
