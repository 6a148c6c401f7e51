"""The lean response model: small schema, no length limits sent, exact mapping to the full one."""

from __future__ import annotations

import json
from typing import Any

import instructor
import pydantic
import pytest

from schemas import (
    DIMENSION_FIELDS,
    BANTSignals,
    DealStage,
    Dimension,
    MEDDICSignals,
    QualificationExtraction,
    signals_of,
)
from schemas.dimensions import DIMENSIONS, ValueKind
from worker.extract.lean import (
    MAX_TEXT_CHARS,
    DimensionSignal,
    ExtractedSignals,
    from_extraction,
    to_extraction,
)


def sent_schema(model: type[pydantic.BaseModel]) -> str:
    """The tool definition instructor sends, as JSON text."""
    return json.dumps(instructor.response_schema(model).openai_schema)


def test_schema_sent_has_no_length_limits_and_is_a_third_of_the_full_one() -> None:
    lean = sent_schema(ExtractedSignals)

    for limit in ("maxLength", "maxItems", "minLength", "minItems"):
        assert limit not in lean
    assert '"title": "Value"' not in lean  # property titles only repeat the names
    assert len(lean) * 3 < len(sent_schema(QualificationExtraction))
    print(f"\nschema chars: lean {len(lean)}, full {len(sent_schema(QualificationExtraction))}")


def test_length_limits_are_still_validated() -> None:
    too_long = "x" * (MAX_TEXT_CHARS + 1)
    with pytest.raises(pydantic.ValidationError, match="at most 2000 characters"):
        DimensionSignal(dimension=Dimension.NEED, value=too_long)
    with pytest.raises(pydantic.ValidationError):
        ExtractedSignals(stage_reason="y" * 501)
    with pytest.raises(pydantic.ValidationError):
        DimensionSignal(dimension=Dimension.BUDGET, confidence=1.5)


@pytest.mark.parametrize(
    "dimension", [d for d in Dimension if not DIMENSIONS.spec(d).of_kind(ValueKind.LIST)]
)
def test_each_dimension_value_lands_in_its_own_value_field(dimension: Dimension) -> None:
    signal = DimensionSignal(
        dimension=dimension,
        identified=True,
        confidence=0.7,
        evidence=["they said so"],
        value="the value",
        role="the role",
    )

    extraction = to_extraction(ExtractedSignals(signals=[signal]))

    model = signals_of(extraction, dimension)
    name = dimension.value
    assert getattr(model, f"{name}_identified") is True
    assert getattr(model, f"{name}_confidence") == 0.7
    assert getattr(model, f"{name}_evidence") == ["they said so"]
    first, *rest = DIMENSION_FIELDS[dimension]
    assert getattr(model, first) == "the value"
    if dimension is Dimension.AUTHORITY:
        assert rest == ["authority_role"] and model.authority_role == "the role"  # type: ignore[union-attr]
    assert changed_fields(extraction) == {
        f"{name}_identified",
        f"{name}_confidence",
        f"{name}_evidence",
        *DIMENSION_FIELDS[dimension],
    }


def test_decision_criteria_come_from_criteria_or_a_single_value() -> None:
    listed = DimensionSignal(
        dimension=Dimension.DECISION_CRITERIA, confidence=0.8, criteria=["SSO", "SOC 2"]
    )
    single = DimensionSignal(dimension=Dimension.DECISION_CRITERIA, value="Salesforce sync")

    assert to_extraction(ExtractedSignals(signals=[listed])).meddic.decision_criteria == [
        "SSO",
        "SOC 2",
    ]
    assert to_extraction(ExtractedSignals(signals=[single])).meddic.decision_criteria == [
        "Salesforce sync"
    ]


def test_dimensions_not_listed_keep_their_defaults() -> None:
    lean = ExtractedSignals(
        overall_confidence=0.3,
        key_insights=["Inbound doubled"],
        recommended_next_questions=["Who signs?"],
        suggested_stage=DealStage.DISCOVERY,
        stage_reason="A need is known.",
    )

    extraction = to_extraction(lean)

    assert extraction.bant == BANTSignals() and extraction.meddic == MEDDICSignals()
    assert extraction.overall_confidence == 0.3
    assert extraction.key_insights == ["Inbound doubled"]
    assert extraction.recommended_next_questions == ["Who signs?"]
    assert extraction.suggested_stage is DealStage.DISCOVERY
    assert extraction.stage_reason == "A need is known."


def test_a_dimension_listed_twice_is_combined() -> None:
    first = DimensionSignal(
        dimension=Dimension.BUDGET, identified=True, confidence=0.6, evidence=["a"], value="$50k"
    )
    second = DimensionSignal(dimension=Dimension.BUDGET, confidence=0.9, evidence=["b", "a"])

    bant = to_extraction(ExtractedSignals(signals=[first, second])).bant

    assert (bant.budget_identified, bant.budget_confidence) == (True, 0.9)
    assert bant.budget_evidence == ["a", "b"]
    assert bant.budget_range == "$50k"  # a later null does not erase a value


def test_full_extraction_survives_the_round_trip_through_the_lean_form() -> None:
    full = QualificationExtraction(
        bant=BANTSignals(
            budget_identified=True,
            budget_confidence=0.9,
            budget_evidence=["We approved $80k."],
            budget_range="$80k",
            authority_identified=True,
            authority_confidence=0.7,
            authority_contact="Dana Smith",
            authority_role="CFO",
        ),
        meddic=MEDDICSignals(
            decision_criteria=["SSO"],
            decision_criteria_confidence=0.6,
            champion_identified=True,
            champion_confidence=0.5,
            champion_contact="Lee",
        ),
        overall_confidence=0.5,
        key_insights=["Budget approved"],
        suggested_stage=DealStage.QUALIFICATION,
        stage_reason="Budget and authority known.",
    )

    lean = from_extraction(full)

    assert [s.dimension for s in lean.signals] == [
        Dimension.BUDGET,
        Dimension.AUTHORITY,
        Dimension.DECISION_CRITERIA,
        Dimension.CHAMPION,
    ]
    assert to_extraction(lean) == full
    assert from_extraction(QualificationExtraction()).signals == []
    empty_reply = len(ExtractedSignals().model_dump_json())
    assert empty_reply * 5 < len(QualificationExtraction().model_dump_json())


def changed_fields(extraction: QualificationExtraction) -> set[str]:
    """The signal fields that differ from their defaults."""
    defaults: dict[str, Any] = {**BANTSignals().model_dump(), **MEDDICSignals().model_dump()}
    values = {**extraction.bant.model_dump(), **extraction.meddic.model_dump()}
    return {name for name, value in values.items() if value != defaults[name]}
