"""A dimension is defined once: one row added to a copy of the table reaches the prompt, the lean
schema, the merge, ownership and the update event with no other change (issue 21, part 1)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from schemas import ConversationKey, ConversationState, DealStage, Owner, QualificationState
from schemas.dimensions import (
    DIMENSIONS,
    DimensionSpec,
    DimensionTable,
    Group,
    Slot,
    ValueField,
    ValueKind,
)
from schemas.ownership import Actor
from schemas.qualification import QualificationModels, qualification_models
from worker.extract.lean import lean_model, to_extraction
from worker.extract.port import ExtractionResult
from worker.extract.prompt import summarize_state, system_prompts
from worker.qualify.merge import changed_fields, merge_qualification_signals
from worker.qualify.ownership import protect_owned
from worker.qualify.update_event import update_event
from worker.qualify.versioning import version_from_reextraction

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
KEY = ConversationKey(uuid.UUID("00000000-0000-4000-8000-000000000021"), "acme", "jane")

URGENCY = DimensionSpec(
    name="urgency",
    group=Group.BANT,
    values=(ValueField(name="urgency_description"),),
    letter="U",
    label="Urgency",
    meaning="why it has to happen now rather than later",
    lean_values="value: a description.",
    full_values="urgency_description.",
    question="What happens if nothing changes this quarter?",
)
PARTNERS = DimensionSpec(
    name="partners",
    group=Group.MEDDIC,
    values=(
        ValueField(
            name="partner_names",
            kind=ValueKind.LIST,
            slot=Slot(name="partners", description="partners only", many=True),
        ),
    ),
    letter="P",
    label="Partners",
    meaning="implementation partners involved",
    lean_values="partners: their names.",
    full_values="partner_names: their names.",
    question="Who would implement it with you?",
)
# A copy of the real table with one row added at the end of each group.
TABLE = DimensionTable(
    (
        *DIMENSIONS.in_group(Group.BANT),
        URGENCY,
        *DIMENSIONS.in_group(Group.MEDDIC),
        PARTNERS,
    )
)
REPLY = {
    "signals": [
        {
            "dimension": "urgency",
            "identified": True,
            "confidence": 0.8,
            "evidence": ["the auditors come back in May"],
            "value": "audit in May",
        },
        {"dimension": "partners", "confidence": 0.6, "partners": ["Globex Consulting"]},
        {"dimension": "budget", "identified": True, "confidence": 0.9, "value": "$80k"},
    ],
    "suggested_stage": "discovery",
    "stage_reason": "They described an urgent problem.",
}


@pytest.fixture(scope="module")
def models() -> QualificationModels:
    return qualification_models(TABLE)


def test_the_added_rows_take_their_place_in_their_groups() -> None:
    assert TABLE.names[4] == "urgency"  # the last BANT dimension
    assert TABLE.names[-1] == "partners"
    assert "urgency" not in DIMENSIONS.names  # the real table is untouched


def test_the_models_of_the_copy_have_the_new_fields(models: QualificationModels) -> None:
    assert list(models.bant.model_fields)[-4:] == [
        "urgency_identified",
        "urgency_confidence",
        "urgency_evidence",
        "urgency_description",
    ]
    assert list(models.meddic.model_fields)[-3:] == [
        "partners_confidence",
        "partners_evidence",
        "partner_names",
    ]
    assert models.table is TABLE
    assert issubclass(models.state, QualificationState)


def test_the_prompt_describes_the_new_dimension_in_its_group() -> None:
    for schema, values in (("lean", "value: a description."), ("full", "urgency_description.")):
        prompt = system_prompts(TABLE)[schema]
        line = f"- urgency: why it has to happen now rather than later. {values}"
        assert line in prompt
        assert prompt.index("- timeline:") < prompt.index(line) < prompt.index("MEDDIC\n")
        assert "urgency" not in system_prompts(DIMENSIONS)[schema]


def test_the_lean_schema_lets_the_model_name_it(models: QualificationModels) -> None:
    lean = lean_model(models)
    sent = json.dumps(lean.model_json_schema())
    assert '"urgency"' in sent and '"partners only"' in sent

    extraction = to_extraction(lean.model_validate(REPLY))

    assert isinstance(extraction, models.extraction)
    assert extraction.bant.urgency_identified is True
    assert extraction.bant.urgency_description == "audit in May"
    assert extraction.meddic.partner_names == ["Globex Consulting"]


def test_merge_summary_and_ownership_carry_it(models: QualificationModels) -> None:
    extraction = to_extraction(lean_model(models).model_validate(REPLY))
    stored = models.state()

    merged = merge_qualification_signals(stored, extraction, now=NOW)

    assert isinstance(merged, models.state)
    assert merged.bant.urgency_description == "audit in May"
    assert merged.meddic.partner_names == ["Globex Consulting"]
    assert changed_fields(stored, merged)[:3] == ["bant.budget", "bant.urgency", "meddic.partners"]
    assert merge_qualification_signals(merged, extraction, now=NOW) == merged
    assert 'urgency: confidence 0.80; urgency_description="audit in May"' in summarize_state(merged)

    owner = Owner(actor=Actor(type="user", id="rep-7"), since=NOW)
    protected, suggestions, _ = protect_owned(
        stored, merged, extraction, {"urgency": owner}, {}, version=1
    )
    assert protected.bant.urgency_identified is False  # a person owns it: unchanged
    assert suggestions["urgency"].values == {"urgency_description": "audit in May"}


def test_the_update_event_carries_it(models: QualificationModels) -> None:
    extraction = to_extraction(lean_model(models).model_validate(REPLY))
    state = ConversationState(
        tenant_id=KEY.tenant_id,
        account_id=KEY.account_id,
        contact_id=KEY.contact_id,
        contact_email="jane@acme.example",
        qualification=models.state(),
    )
    result = ExtractionResult(status="ok", extraction=extraction, model="m", prompt_version="p")

    version = version_from_reextraction(state, result, extracted_turns=1, now=NOW)
    event = json.loads(update_event(version).model_dump_json())

    assert event["qualification"]["bant"]["urgency_description"] == "audit in May"
    assert event["qualification"]["meddic"]["partner_names"] == ["Globex Consulting"]
    assert {"bant.urgency", "meddic.partners"} <= set(event["changed_fields"])
    assert event["deal_stage"] == DealStage.DISCOVERY.value


def test_a_table_refuses_a_dimension_defined_twice() -> None:
    with pytest.raises(ValueError, match="defined twice"):
        DimensionTable((*DIMENSIONS.rows, DIMENSIONS.spec("budget")))
