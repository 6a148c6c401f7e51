"""The labelled evaluation dataset (CONTRACT.md section 8): well formed, labels checkable.

Two parts: development.jsonl (the rules' patterns may be tuned on it) and held_out.jsonl (new
conversations written before any pattern change). A label the scorer can never satisfy (a
mention that no turn contains) or that contradicts itself (a mention that is also stale) would
silently skew every score, so these are checked here, in both parts.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.evaluation import dataset as eval_dataset
from schemas import Channel, DealStage, Speaker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "eval"
PARTS = {"development": EXAMPLES / "development.jsonl", "held_out": EXAMPLES / "held_out.jsonl"}
MAX_TURNS = {"development": 30, "held_out": 20}

DIMENSIONS = (
    "budget",
    "authority",
    "need",
    "timeline",
    "metrics",
    "economic_buyer",
    "decision_criteria",
    "decision_process",
    "identify_pain",
    "champion",
    "paper_process",
    "competition",
)
STALL_GAP = timedelta(days=30)


def _load(part: str) -> list[dict[str, Any]]:
    with PARTS[part].open(encoding="utf-8") as lines:
        return [json.loads(line) | {"part": part} for line in lines if line.strip()]


DEVELOPMENT = _load("development")
HELD_OUT = _load("held_out")
CASES = DEVELOPMENT + HELD_OUT


def _case_id(case: dict[str, Any]) -> str:
    return str(case["id"])


def _all_text(case: dict[str, Any]) -> str:
    return "\n".join(turn["text"] for turn in case["turns"]).casefold()


def _final_stages(cases: list[dict[str, Any]]) -> list[set[str]]:
    return [set(case["expect"]["stage"]) for case in cases]


def test_the_parts_hold_at_least_44_and_20_conversations_with_ids_unique_across_both() -> None:
    assert len(DEVELOPMENT) >= 44
    assert len(HELD_OUT) >= 20
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids))
    assert all(isinstance(case_id, str) and case_id for case_id in ids)


@pytest.mark.parametrize("part", PARTS)
def test_every_line_is_one_json_object_with_the_contract_keys(part: str) -> None:
    raw_lines = PARTS[part].read_text(encoding="utf-8").splitlines()
    cases = [case for case in CASES if case["part"] == part]
    assert len(raw_lines) == len(cases)
    for case in cases:
        assert set(case) == {"id", "title", "turns", "expect", "part"}, case.get("id")
        assert isinstance(case["title"], str) and case["title"].strip()


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_turns_are_6_to_30_or_6_to_20_held_out_with_known_speakers_and_text(
    case: dict[str, Any],
) -> None:
    turns = case["turns"]
    assert 6 <= len(turns) <= MAX_TURNS[case["part"]]
    speakers = {speaker.value for speaker in Speaker}
    channels = {channel.value for channel in Channel}
    for turn in turns:
        assert set(turn) <= {"speaker", "text", "channel", "occurred_at"}
        assert turn["speaker"] in speakers
        assert isinstance(turn["text"], str) and turn["text"].strip()
        assert "\x00" not in turn["text"]
        if "channel" in turn:
            assert turn["channel"] in channels


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_dates_when_given_are_on_every_turn_with_an_offset_and_in_order(
    case: dict[str, Any],
) -> None:
    stamps = [turn.get("occurred_at") for turn in case["turns"]]
    if all(stamp is None for stamp in stamps):
        return
    assert all(isinstance(stamp, str) for stamp in stamps), "dated on some turns only"
    moments = [datetime.fromisoformat(str(stamp)) for stamp in stamps]
    assert all(moment.utcoffset() is not None for moment in moments)
    assert moments == sorted(moments)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_expect_has_all_twelve_dimensions_with_valid_labels(case: dict[str, Any]) -> None:
    expect = case["expect"]
    assert set(expect) == {*DIMENSIONS, "stage"}
    for dimension in DIMENSIONS:
        label = expect[dimension]
        assert set(label) <= {"identified", "mentions", "stale"}, dimension
        assert label["identified"] in (True, False, None), dimension
        mentions = label["mentions"]
        assert isinstance(mentions, list), dimension
        assert all(isinstance(m, str) and m.strip() for m in mentions), dimension
        # Only an identified dimension has a value to look for or a superseded value to reject.
        if label["identified"] is not True:
            assert mentions == [], dimension
            assert "stale" not in label, dimension
        if "stale" in label:
            assert label["stale"], dimension
            assert all(isinstance(s, str) and s.strip() for s in label["stale"]), dimension


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_stage_is_a_non_empty_list_of_deal_stages(case: dict[str, Any]) -> None:
    stages = case["expect"]["stage"]
    assert isinstance(stages, list) and stages
    assert len(stages) == len(set(stages))
    valid = {stage.value for stage in DealStage}
    assert set(stages) <= valid


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_every_mention_and_stale_value_occurs_in_some_turn(case: dict[str, Any]) -> None:
    text = _all_text(case)
    for dimension in DIMENSIONS:
        label = case["expect"][dimension]
        for mention in label["mentions"]:
            assert mention.casefold() in text, f"{dimension}: {mention!r}"
        for stale in label.get("stale", []):
            assert stale.casefold() in text, f"{dimension}: stale {stale!r}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_no_mention_contains_a_stale_value_of_the_same_dimension(case: dict[str, Any]) -> None:
    for dimension in DIMENSIONS:
        label = case["expect"][dimension]
        for stale in label.get("stale", []):
            for mention in label["mentions"]:
                assert stale.casefold() not in mention.casefold(), f"{dimension}: {mention!r}"


def test_the_dataset_covers_won_lost_stalled_and_small_talk_outcomes() -> None:
    final_stages = _final_stages(CASES)
    assert sum(stages == {"closed_lost"} for stages in final_stages) >= 2
    assert sum("closed_won" in stages for stages in final_stages) >= 2
    assert sum("stalled" in stages for stages in final_stages) >= 1
    nothing_identified = [
        case for case in CASES if not any(case["expect"][d]["identified"] for d in DIMENSIONS)
    ]
    assert len(nothing_identified) >= 2


def test_the_held_out_part_reaches_late_stages_and_has_revisions_and_ambiguous_labels() -> None:
    final_stages = _final_stages(HELD_OUT)
    assert sum("negotiation" in stages for stages in final_stages) >= 3
    assert any("closed_won" in stages for stages in final_stages)
    assert any(stages == {"closed_lost"} for stages in final_stages)
    assert any("stalled" in stages for stages in final_stages)
    labels = [case["expect"][d] for case in HELD_OUT for d in DIMENSIONS]
    assert sum("stale" in label for label in labels) >= 3
    assert sum(label["identified"] is None for label in labels) >= 10
    assert sum(label["identified"] is False for label in labels) >= 50


@pytest.mark.parametrize("dimension", ["paper_process", "competition"])
def test_the_meddpicc_dimensions_are_labelled_true_and_false_in_both_parts(
    dimension: str,
) -> None:
    for part in (DEVELOPMENT, HELD_OUT):
        labels = [case["expect"][dimension]["identified"] for case in part]
        assert labels.count(True) >= 3 and labels.count(False) >= 3


def test_stalled_then_resumed_cases_have_a_gap_longer_than_the_stall_threshold() -> None:
    gaps = []
    for case in CASES:
        stamps = [turn.get("occurred_at") for turn in case["turns"]]
        if None in stamps:
            continue
        moments = [datetime.fromisoformat(str(stamp)) for stamp in stamps]
        gaps.append(max(later - earlier for earlier, later in itertools.pairwise(moments)))
    assert sum(gap > STALL_GAP for gap in gaps) >= 3


def test_superseded_values_and_ambiguous_labels_are_represented() -> None:
    stale_dimensions = {
        dimension
        for case in CASES
        for dimension in DIMENSIONS
        if "stale" in case["expect"][dimension]
    }
    assert {"budget", "timeline", "champion", "economic_buyer"} <= stale_dimensions
    ambiguous = sum(
        case["expect"][dimension]["identified"] is None
        for case in CASES
        for dimension in DIMENSIONS
    )
    assert ambiguous >= 10


# CONTRACT.md section 4's default exit criteria; each stage also needs the earlier stages' ones.
PIPELINE = ("prospecting", "discovery", "qualification", "evaluation", "negotiation")
EXIT_CRITERIA: dict[str, tuple[str, ...]] = {
    "prospecting": (),
    "discovery": (),
    "qualification": ("need", "identify_pain"),
    "evaluation": ("budget", "authority", "timeline"),
    "negotiation": ("economic_buyer", "decision_criteria", "decision_process"),
}


def _highest_reachable_stage(expect: dict[str, Any]) -> str:
    reached = "discovery"
    required: list[str] = []
    for stage in PIPELINE[2:]:
        required.extend(EXIT_CRITERIA[stage])
        if not all(expect[dimension]["identified"] is True for dimension in required):
            break
        reached = stage
    return reached


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_acceptable_stages_are_reachable_under_the_exit_criteria_of_the_labels(
    case: dict[str, Any],
) -> None:
    expect = case["expect"]
    ceiling = PIPELINE.index(_highest_reachable_stage(expect))
    for stage in expect["stage"]:
        if stage in PIPELINE:
            assert PIPELINE.index(stage) <= ceiling, stage
    if "closed_won" in expect["stage"]:
        assert _highest_reachable_stage(expect) == "negotiation"


def test_the_parts_eval_scores_by_default_are_the_files_checked_here() -> None:
    root = EXAMPLES.parents[1]  # eval's defaults are relative to the repository root
    assert root / eval_dataset.HELD_OUT == PARTS["held_out"]
    assert root / eval_dataset.DEVELOPMENT == PARTS["development"]
