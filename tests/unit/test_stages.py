"""The deal-stage machine v2: every (from, to, stalled_from) triple against tables written by hand.

The expectations below are written from CONTRACT.md section 4's sentences, not derived from
worker.qualify.stages:
- "One step at a time, forward only; no skipping."
- "Any open stage -> stalled." "stalled -> that stage, an earlier open stage, or the one right
  after it; anything further is a skip and is rejected."
- "Any open stage, stalled included -> closed_lost." "closed_won only from negotiation."
  "The two closed stages are terminal." "Staying in the same stage is always allowed."
Decisions where the contract is silent: a stalled deal with no stalled_from (legacy rows)
resumes as if stalled from prospecting; closed_won is not reachable from stalled even when it
stalled from negotiation (it must resume to negotiation first).
"""

from __future__ import annotations

import itertools

import pytest

from schemas import DealStage
from worker.qualify.stages import (
    TRANSITIONS,
    VALID_TRANSITIONS,
    allowed_targets,
    check_transition,
    is_forward,
    stalled_from_after,
)

PIPELINE_ORDER = [
    "prospecting",
    "discovery",
    "qualification",
    "evaluation",
    "negotiation",
    "closed_won",
]

# Every stage but stalled; stalled_from does not matter for these.
ALLOWED: dict[str, set[str]] = {
    "prospecting": {"prospecting", "discovery", "stalled", "closed_lost"},
    "discovery": {"discovery", "qualification", "stalled", "closed_lost"},
    "qualification": {"qualification", "evaluation", "stalled", "closed_lost"},
    "evaluation": {"evaluation", "negotiation", "stalled", "closed_lost"},
    "negotiation": {"negotiation", "closed_won", "stalled", "closed_lost"},
    "closed_won": {"closed_won"},
    "closed_lost": {"closed_lost"},
}

# stalled, by stalled_from (None: a legacy row, treated as stalled from prospecting).
ALLOWED_FROM_STALLED: dict[str | None, set[str]] = {
    None: {"stalled", "closed_lost", "prospecting", "discovery"},
    "prospecting": {"stalled", "closed_lost", "prospecting", "discovery"},
    "discovery": {"stalled", "closed_lost", "prospecting", "discovery", "qualification"},
    "qualification": {
        "stalled",
        "closed_lost",
        "prospecting",
        "discovery",
        "qualification",
        "evaluation",
    },
    "evaluation": {
        "stalled",
        "closed_lost",
        "prospecting",
        "discovery",
        "qualification",
        "evaluation",
        "negotiation",
    },
    "negotiation": {
        "stalled",
        "closed_lost",
        "prospecting",
        "discovery",
        "qualification",
        "evaluation",
        "negotiation",
    },
}

STALLED_FROM_VALUES: list[DealStage | None] = [
    None,
    DealStage.PROSPECTING,
    DealStage.DISCOVERY,
    DealStage.QUALIFICATION,
    DealStage.EVALUATION,
    DealStage.NEGOTIATION,
]
ALL_TRIPLES = list(itertools.product(DealStage, DealStage, STALLED_FROM_VALUES))


def expected_allowed(
    from_stage: DealStage, to_stage: DealStage, stalled_from: DealStage | None
) -> bool:
    if from_stage is DealStage.STALLED:
        key = None if stalled_from is None else stalled_from.value
        return to_stage.value in ALLOWED_FROM_STALLED[key]
    return to_stage.value in ALLOWED[from_stage.value]


def triple_id(value: object) -> str:
    return "none" if value is None else str(getattr(value, "value", value))


def test_the_expected_tables_cover_every_stage_and_every_stalled_from() -> None:
    assert set(ALLOWED) | {"stalled"} == {stage.value for stage in DealStage}
    assert len(ALL_TRIPLES) == 8 * 8 * 6


@pytest.mark.parametrize(("from_stage", "to_stage", "stalled_from"), ALL_TRIPLES, ids=triple_id)
def test_transition_is_accepted_exactly_when_the_contract_allows_it(
    from_stage: DealStage, to_stage: DealStage, stalled_from: DealStage | None
) -> None:
    expected = expected_allowed(from_stage, to_stage, stalled_from)
    check = check_transition(from_stage, to_stage, stalled_from)
    assert check.accepted is expected
    assert (to_stage in allowed_targets(from_stage, stalled_from)) is expected
    assert check.reason.startswith(f"{from_stage.value} -> {to_stage.value}: ")
    assert len(check.reason) > len(f"{from_stage.value} -> {to_stage.value}: ")


def expected_skipped(
    from_stage: DealStage, to_stage: DealStage, stalled_from: DealStage | None
) -> str | None:
    """The stages a rejected forward move jumps over, or None when it is no skip: allowed,
    backwards, from a closed stage, to stalled/closed_lost, or winning from stalled."""
    if expected_allowed(from_stage, to_stage, stalled_from):
        return None
    if to_stage.value not in PIPELINE_ORDER:
        return None
    if from_stage is DealStage.STALLED:
        if to_stage is DealStage.CLOSED_WON:
            return None
        origin = "prospecting" if stalled_from is None else stalled_from.value
    elif from_stage.value in PIPELINE_ORDER and from_stage is not DealStage.CLOSED_WON:
        origin = from_stage.value
    else:
        return None
    start, end = PIPELINE_ORDER.index(origin), PIPELINE_ORDER.index(to_stage.value)
    return ", ".join(PIPELINE_ORDER[start + 1 : end]) if end > start + 1 else None


SKIPS = [
    (*triple, skipped)
    for triple in ALL_TRIPLES
    if (skipped := expected_skipped(*triple)) is not None
]


def test_there_are_skips_from_open_and_from_stalled_stages() -> None:
    assert {from_stage for from_stage, *_ in SKIPS} == {
        DealStage.PROSPECTING,
        DealStage.DISCOVERY,
        DealStage.QUALIFICATION,
        DealStage.EVALUATION,
        DealStage.STALLED,
    }


@pytest.mark.parametrize(
    ("from_stage", "to_stage", "stalled_from", "skipped"), SKIPS, ids=triple_id
)
def test_a_rejected_forward_move_names_exactly_the_stages_it_skips(
    from_stage: DealStage, to_stage: DealStage, stalled_from: DealStage | None, skipped: str
) -> None:
    check = check_transition(from_stage, to_stage, stalled_from)
    assert not check.accepted
    head = f"{from_stage.value} -> {to_stage.value}: skips {skipped}"
    if from_stage is DealStage.STALLED:
        assert check.reason.startswith(f"{head} (stalled from ")
    else:
        assert check.reason == head


def test_skipping_names_the_skipped_stages() -> None:
    check = check_transition(DealStage.PROSPECTING, DealStage.NEGOTIATION)
    assert not check.accepted
    assert check.reason == "prospecting -> negotiation: skips discovery, qualification, evaluation"


def test_winning_before_negotiation_is_a_skip() -> None:
    check = check_transition(DealStage.EVALUATION, DealStage.CLOSED_WON)
    assert not check.accepted
    assert check.reason == "evaluation -> closed_won: skips negotiation"


def test_a_deal_can_be_lost_from_any_open_stage_and_from_stalled() -> None:
    for stage in (DealStage.PROSPECTING, DealStage.EVALUATION, DealStage.STALLED):
        check = check_transition(stage, DealStage.CLOSED_LOST, None)
        assert check.accepted
        assert check.reason == f"{stage.value} -> closed_lost: the deal is lost"


def test_resuming_beyond_one_step_past_stalled_from_is_a_skip() -> None:
    check = check_transition(DealStage.STALLED, DealStage.EVALUATION, DealStage.DISCOVERY)
    assert not check.accepted
    assert check.reason == "stalled -> evaluation: skips qualification (stalled from discovery)"


def test_a_legacy_stalled_deal_resumes_as_if_stalled_from_prospecting() -> None:
    check = check_transition(DealStage.STALLED, DealStage.QUALIFICATION, None)
    assert not check.accepted
    assert "skips discovery" in check.reason
    assert "unknown stage, taken as prospecting" in check.reason
    assert check_transition(DealStage.STALLED, DealStage.DISCOVERY, None).accepted


def test_a_stalled_deal_resumes_to_negotiation_before_it_is_won() -> None:
    check = check_transition(DealStage.STALLED, DealStage.CLOSED_WON, DealStage.NEGOTIATION)
    assert not check.accepted
    assert "resume to negotiation first" in check.reason


def test_closed_stages_are_terminal() -> None:
    for closed in (DealStage.CLOSED_WON, DealStage.CLOSED_LOST):
        check = check_transition(closed, DealStage.NEGOTIATION)
        assert not check.accepted
        assert check.reason == f"{closed.value} -> negotiation: {closed.value} is terminal"


def test_moving_backwards_between_open_stages_is_rejected() -> None:
    check = check_transition(DealStage.EVALUATION, DealStage.DISCOVERY)
    assert not check.accepted
    assert check.reason == "evaluation -> discovery: deals do not move backwards"


def test_stalled_from_is_ignored_unless_the_deal_is_stalled() -> None:
    check = check_transition(DealStage.DISCOVERY, DealStage.EVALUATION, DealStage.NEGOTIATION)
    assert not check.accepted


@pytest.mark.parametrize(
    ("from_stage", "to_stage", "stalled_from", "forward"),
    [
        (DealStage.DISCOVERY, DealStage.QUALIFICATION, None, True),
        (DealStage.NEGOTIATION, DealStage.CLOSED_WON, None, True),
        (DealStage.DISCOVERY, DealStage.STALLED, None, False),
        (DealStage.DISCOVERY, DealStage.CLOSED_LOST, None, False),
        (DealStage.STALLED, DealStage.DISCOVERY, DealStage.DISCOVERY, False),
        (DealStage.STALLED, DealStage.PROSPECTING, DealStage.DISCOVERY, False),
        (DealStage.STALLED, DealStage.QUALIFICATION, DealStage.DISCOVERY, True),
        (DealStage.STALLED, DealStage.DISCOVERY, None, True),
        (DealStage.STALLED, DealStage.CLOSED_LOST, DealStage.DISCOVERY, False),
    ],
    ids=triple_id,
)
def test_forward_means_past_where_the_deal_is_or_stalled(
    from_stage: DealStage, to_stage: DealStage, stalled_from: DealStage | None, forward: bool
) -> None:
    assert is_forward(from_stage, to_stage, stalled_from) is forward


@pytest.mark.parametrize(
    ("from_stage", "to_stage", "stalled_from", "after"),
    [
        (DealStage.EVALUATION, DealStage.STALLED, None, DealStage.EVALUATION),
        (DealStage.STALLED, DealStage.STALLED, DealStage.EVALUATION, DealStage.EVALUATION),
        (DealStage.STALLED, DealStage.EVALUATION, DealStage.EVALUATION, None),
        (DealStage.STALLED, DealStage.CLOSED_LOST, DealStage.EVALUATION, None),
        (DealStage.DISCOVERY, DealStage.QUALIFICATION, None, None),
        (DealStage.CLOSED_WON, DealStage.STALLED, None, None),
    ],
    ids=triple_id,
)
def test_stalled_from_is_set_on_stalling_kept_while_stalled_and_cleared_on_leaving(
    from_stage: DealStage,
    to_stage: DealStage,
    stalled_from: DealStage | None,
    after: DealStage | None,
) -> None:
    assert stalled_from_after(from_stage, to_stage, stalled_from) is after


def test_the_compatibility_table_treats_stalled_as_stalled_from_prospecting() -> None:
    assert {s.value for s in VALID_TRANSITIONS[DealStage.STALLED]} == ALLOWED_FROM_STALLED[None]
    for stage in DealStage:
        if stage is not DealStage.STALLED:
            assert {s.value for s in VALID_TRANSITIONS[stage]} == ALLOWED[stage.value]


def test_transition_tables_cannot_be_mutated() -> None:
    with pytest.raises(TypeError):
        VALID_TRANSITIONS[DealStage.PROSPECTING] = frozenset()  # type: ignore[index]
    with pytest.raises(TypeError):
        TRANSITIONS[(DealStage.PROSPECTING, None)] = frozenset()  # type: ignore[index]
