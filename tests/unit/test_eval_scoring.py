"""The evaluation scorer on hand-made states: counts that a wrong rule would get wrong."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from devtools.evaluation.dataset import LABELLED_DIMENSIONS, Expectations, read_dataset
from devtools.evaluation.scoring import score_conversation, summarize
from schemas import (
    BANTSignals,
    ConversationState,
    DealStage,
    Dimension,
    MEDDICSignals,
    QualificationState,
)
from worker.errors import ConfigurationError

NOT_LABELLED: dict[str, Any] = {"identified": False, "mentions": []}


def expectations(stage: list[str] | None = None, **labels: dict[str, Any]) -> Expectations:
    raw: dict[str, Any] = {name: labels.get(name, NOT_LABELLED) for name in LABELLED_DIMENSIONS}
    return Expectations.model_validate({**raw, "stage": stage or ["discovery"]})


def state(
    bant: BANTSignals | None = None,
    meddic: MEDDICSignals | None = None,
    stage: DealStage = DealStage.DISCOVERY,
) -> ConversationState:
    return ConversationState(
        tenant_id=uuid.uuid4(),
        account_id="a",
        contact_id="c",
        contact_email="p@example.com",
        deal_stage=stage,
        qualification=QualificationState(
            bant=bant or BANTSignals(), meddic=meddic or MEDDICSignals()
        ),
    )


def test_precision_and_recall_count_each_kind_of_error_once() -> None:
    expect = expectations(
        budget={"identified": True, "mentions": []},  # found: TP
        need={"identified": True, "mentions": []},  # missed: FN
        timeline={"identified": False, "mentions": []},  # claimed: FP
        authority={"identified": None, "mentions": []},  # ambiguous: not scored
    )
    final = state(
        bant=BANTSignals(
            budget_identified=True, timeline_identified=True, authority_identified=True
        )
    )

    summary = summarize([score_conversation("c1", expect, final)])

    overall = summary.overall
    assert (overall.tp, overall.fp, overall.fn) == (1, 1, 1)
    # Every other dimension is labelled absent and not found: correctly absent.
    assert overall.tn == len(Dimension) - 4  # 1 TP, 1 FP, 1 FN, 1 unscored
    assert overall.precision == 0.5 and overall.recall == 0.5
    assert summary.per_dimension[Dimension.BUDGET].f1 == 1.0
    assert summary.per_dimension[Dimension.NEED].recall == 0.0
    assert summary.per_dimension[Dimension.TIMELINE].precision == 0.0
    authority = summary.per_dimension[Dimension.AUTHORITY]
    assert (authority.tp, authority.fp, authority.fn, authority.tn) == (0, 0, 0, 0)
    assert authority.precision is None  # undefined, not zero


def test_micro_average_pools_counts_across_conversations() -> None:
    expect = expectations(budget={"identified": True, "mentions": []})
    found = state(bant=BANTSignals(budget_identified=True))
    missed = state()
    wrong = state(bant=BANTSignals(budget_identified=True, need_identified=True))

    summary = summarize(
        [
            score_conversation(name, expect, s)
            for name, s in (("1", found), ("2", missed), ("3", wrong))
        ]
    )

    budget = summary.per_dimension[Dimension.BUDGET]
    assert (budget.tp, budget.fn) == (2, 1)
    assert summary.overall.precision == pytest.approx(2 / 3)  # 2 TP, 1 FP (need)
    assert summary.overall.recall == pytest.approx(2 / 3)
    assert summary.overall.f1 == pytest.approx(2 / 3)


def test_decision_criteria_are_identified_by_a_non_empty_list() -> None:
    expect = expectations(decision_criteria={"identified": True, "mentions": ["soc 2"]})
    final = state(meddic=MEDDICSignals(decision_criteria=["SOC 2 Type II", "SSO"]))

    score = score_conversation("c", expect, final)

    criteria = next(s for s in score.dimensions if s.dimension is Dimension.DECISION_CRITERIA)
    assert criteria.predicted and criteria.mentions_found == 1


def test_mentions_are_found_in_values_or_evidence_case_insensitively() -> None:
    expect = expectations(
        budget={"identified": True, "mentions": ["80K", "finance", "absent"]},
        authority={"identified": True, "mentions": ["cfo", "Dana"]},
    )
    final = state(
        bant=BANTSignals(
            budget_identified=True,
            budget_range="$80k",
            budget_evidence=["Finance approved it."],
            authority_identified=True,
            authority_role="CFO",
            authority_contact="Dana Lee",
        )
    )

    summary = summarize([score_conversation("c", expect, final)])

    assert summary.per_dimension[Dimension.BUDGET].mentions_found == 2
    assert summary.per_dimension[Dimension.BUDGET].mentions == 3
    assert summary.per_dimension[Dimension.AUTHORITY].mentions_found == 2
    assert summary.overall.mention_share == pytest.approx(4 / 5)


def test_a_mention_in_another_dimension_or_an_unidentified_one_is_not_found() -> None:
    expect = expectations(
        budget={"identified": True, "mentions": ["80k"]},
        need={"identified": True, "mentions": ["routing"]},
    )
    final = state(
        bant=BANTSignals(
            timeline_identified=True,
            timeline_description="80k by Q3",  # the right text in the wrong dimension
            need_identified=False,
            need_evidence=["manual routing"],  # quoted, but never identified
        )
    )

    summary = summarize([score_conversation("c", expect, final)])

    assert summary.overall.mentions_found == 0


def test_stale_counts_only_values_shown_as_current_not_evidence() -> None:
    expect = expectations(
        budget={"identified": True, "mentions": ["80k"], "stale": ["50k"]},
        timeline={"identified": True, "mentions": ["Q4"], "stale": ["Q3"]},
    )
    final = state(
        bant=BANTSignals(
            budget_identified=True,
            budget_range="$80k",
            budget_evidence=["We had $50k.", "Now it is $80k."],  # the old quote may stay
            timeline_identified=True,
            timeline_description="Q3, maybe Q4",  # the old value still shown: stale
        )
    )

    summary = summarize([score_conversation("c", expect, final)])

    assert summary.per_dimension[Dimension.BUDGET].stale_shown == 0
    assert summary.per_dimension[Dimension.TIMELINE].stale_shown == 1
    assert (summary.overall.stale, summary.overall.stale_shown) == (2, 1)


def test_stage_is_acceptable_only_when_listed() -> None:
    expect = expectations(stage=["qualification", "evaluation"])

    scores = [
        score_conversation("in", expect, state(stage=DealStage.EVALUATION)),
        score_conversation("out", expect, state(stage=DealStage.DISCOVERY)),
    ]

    assert [s.stage_acceptable for s in scores] == [True, False]
    assert summarize(scores).stage_share == 0.5


def _line(conversation_id: str, **override: Any) -> str:
    expect: dict[str, Any] = {name: NOT_LABELLED for name in LABELLED_DIMENSIONS}
    expect |= {"stage": ["discovery"]}
    record = {
        "id": conversation_id,
        "turns": [{"speaker": "prospect", "text": "hi"}],
        "expect": expect,
    } | override
    return json.dumps(record)


def test_bad_dataset_lines_are_reported_by_number_and_the_rest_are_read(tmp_path: Path) -> None:
    no_champion = {d.value: NOT_LABELLED for d in Dimension if d is not Dimension.CHAMPION}
    lines = [
        _line("ok1"),
        "{not json",
        _line("bad-expect", expect={**no_champion, "stage": ["discovery"]}),
        "",
        _line("bad-speaker", turns=[{"speaker": "bot", "text": "x"}]),
        _line("ok1"),
        _line("ok2"),
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines))

    dataset = read_dataset(path)

    assert [c.id for c in dataset.conversations] == ["ok1", "ok2"]
    assert [number for number, _ in dataset.problems] == [2, 3, 5, 6]
    assert "champion" in dataset.problems[1][1]
    assert "used twice" in dataset.problems[3][1]


def test_a_line_must_label_the_twelve_dimensions_of_contract_v3_and_no_other(
    tmp_path: Path,
) -> None:
    twelve = {name: NOT_LABELLED for name in LABELLED_DIMENSIONS}
    without_competition = {k: v for k, v in twelve.items() if k != "competition"}
    lines = [
        _line("twelve"),
        _line("ten", expect={**without_competition, "stage": ["discovery"]}),
        _line("extra", expect={**twelve, "pricing": NOT_LABELLED, "stage": ["discovery"]}),
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines))

    dataset = read_dataset(path)

    assert len(LABELLED_DIMENSIONS) == 12
    assert {"paper_process", "competition"} <= set(LABELLED_DIMENSIONS)
    assert [c.id for c in dataset.conversations] == ["twelve"]
    assert [number for number, _ in dataset.problems] == [2, 3]
    assert "lacks competition" in dataset.problems[0][1]
    assert "unknown dimensions pricing" in dataset.problems[1][1]


def test_a_dataset_without_valid_lines_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("{}\n")
    with pytest.raises(ConfigurationError, match="no valid conversation"):
        read_dataset(path)
    with pytest.raises(ConfigurationError, match="cannot read"):
        read_dataset(tmp_path / "missing.jsonl")
