"""The pipeline view shows the next stage and what its exit criteria still lack."""

from __future__ import annotations

import uuid

from schemas import BANTSignals, ConversationState, DealStage, QualificationState
from worker.qualify.criteria import DEFAULT_CRITERIA, parse_stage_criteria
from worker.tools.views import next_stage_gaps, render_pipeline


def state(stage: DealStage, **bant: bool) -> ConversationState:
    return ConversationState(
        tenant_id=uuid.uuid4(),
        account_id="acme",
        contact_id="jane",
        contact_email="jane@example.com",
        deal_stage=stage,
        qualification=QualificationState(bant=BANTSignals(**bant)),
    )


def test_the_next_stage_names_the_missing_dimensions_in_criteria_order() -> None:
    discovery = state(DealStage.DISCOVERY)
    assert next_stage_gaps(discovery, DEFAULT_CRITERIA) == "qualification: need, identify_pain"
    with_need = state(DealStage.DISCOVERY, need_identified=True)
    assert next_stage_gaps(with_need, DEFAULT_CRITERIA) == "qualification: identify_pain"


def test_without_criteria_nothing_is_missing_and_closed_deals_have_no_next_stage() -> None:
    off = parse_stage_criteria("off")
    assert next_stage_gaps(state(DealStage.DISCOVERY), off) == "qualification: nothing missing"
    assert next_stage_gaps(state(DealStage.CLOSED_LOST), DEFAULT_CRITERIA) == "-"


def test_the_pipeline_table_has_the_gap_column() -> None:
    table = render_pipeline(uuid.uuid4(), [state(DealStage.PROSPECTING)]).splitlines()
    assert table[1].endswith("NEXT STAGE: MISSING")
    assert table[3].endswith("discovery: nothing missing")
