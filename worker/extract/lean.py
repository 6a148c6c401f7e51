"""The lean response model the LLM fills in, and its conversion to a `QualificationExtraction`.

The full `QualificationExtraction` asks the model for every field of all ten dimensions on every
call: about 6,000 characters of JSON schema sent, and 1,200 characters back even when the turns
say nothing. Here the model lists only the dimensions the new turns inform, one small
`DimensionSignal` each. Nothing in the schema sent carries a length limit (llama.cpp's grammar
compiler dies on `maxLength`): the limits are plain validators, so pydantic still enforces them
and instructor re-asks when they fail. Pure code; no I/O library is imported here.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.json_schema import DEFAULT_REF_TEMPLATE, GenerateJsonSchema, JsonSchemaMode

from schemas import (
    DIMENSION_FIELDS,
    DealStage,
    Dimension,
    QualificationExtraction,
    signals_of,
)
from schemas.qualification import BANT_DIMENSIONS

# The contract's limits (schemas.qualification: ShortText 2000, stage_reason 500), enforced
# after parsing instead of as `maxLength` in the schema the model is sent.
MAX_TEXT_CHARS = 2000
MAX_REASON_CHARS = 500


def _at_most(limit: int) -> AfterValidator:
    def check(text: str) -> str:
        if len(text) > limit:
            raise ValueError(f"at most {limit} characters, got {len(text)}")
        return text

    return AfterValidator(check)


Text = Annotated[str, _at_most(MAX_TEXT_CHARS)]
Reason = Annotated[str, _at_most(MAX_REASON_CHARS)]
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]


class CompactJsonSchema(GenerateJsonSchema):
    """Pydantic's JSON schema without property titles: they repeat the property names."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


class DimensionSignal(BaseModel):
    """What the new turns show about one dimension."""

    model_config = ConfigDict(extra="ignore")

    dimension: Dimension
    identified: bool = False
    confidence: Confidence = 0.0
    evidence: list[str] = Field(default_factory=list, description="Verbatim quotes")
    value: Text | None = Field(
        default=None, description="Range, description, or contact name (see prompt)"
    )
    role: Text | None = Field(default=None, description="authority only: title")
    criteria: list[Text] = Field(default_factory=list, description="decision_criteria only")


# One stage step the new turns show (the prompt says what each field holds; no docstring, as
# it would be sent on every call).
class WalkStep(BaseModel):
    model_config = ConfigDict(extra="ignore")

    stage: DealStage
    reason: Reason
    quote: Text


class ExtractedSignals(BaseModel):
    """Signals in the new turns. List only dimensions they inform."""

    model_config = ConfigDict(extra="ignore")

    signals: list[DimensionSignal] = Field(default_factory=list)
    overall_confidence: Confidence = 0.0
    key_insights: list[Text] = Field(default_factory=list)
    recommended_next_questions: list[Text] = Field(default_factory=list)
    stage_walk: list[WalkStep] = Field(default_factory=list)
    suggested_stage: DealStage | None = None
    stage_reason: Reason | None = None

    @classmethod
    def model_json_schema(
        cls,
        by_alias: bool | None = None,
        ref_template: str = DEFAULT_REF_TEMPLATE,
        schema_generator: type[GenerateJsonSchema] = CompactJsonSchema,
        mode: JsonSchemaMode = "validation",
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The compact schema by default: this is what instructor sends the model."""
        schema = super().model_json_schema(by_alias, ref_template, schema_generator, mode, **kwargs)
        for definition in schema.get("$defs", {}).values():
            if "enum" in definition:  # the enum's docstring speaks to developers, not the model
                definition.pop("description", None)
        return schema


def to_extraction(lean: ExtractedSignals) -> QualificationExtraction:
    """The full extraction `lean` stands for; dimensions it does not list keep their defaults.

    A dimension listed twice is combined: evidence joined, the higher confidence, the later
    non-null values, identified if either says so."""
    bant: dict[str, Any] = {}
    meddic: dict[str, Any] = {}
    for signal in lean.signals:
        target = bant if signal.dimension in BANT_DIMENSIONS else meddic
        _add_signal(target, signal)
    return QualificationExtraction.model_validate(
        {
            "bant": bant,
            "meddic": meddic,
            "overall_confidence": lean.overall_confidence,
            "key_insights": lean.key_insights,
            "recommended_next_questions": lean.recommended_next_questions,
            "stage_walk": [step.model_dump() for step in lean.stage_walk],
            "suggested_stage": lean.suggested_stage,
            "stage_reason": lean.stage_reason,
        }
    )


def _add_signal(fields: dict[str, Any], signal: DimensionSignal) -> None:
    name = signal.dimension.value
    evidence: list[str] = fields.get(f"{name}_evidence", [])
    fields[f"{name}_evidence"] = list(dict.fromkeys([*evidence, *signal.evidence]))
    fields[f"{name}_confidence"] = max(fields.get(f"{name}_confidence", 0.0), signal.confidence)
    if signal.dimension is not Dimension.DECISION_CRITERIA:  # its list is its identification
        fields[f"{name}_identified"] = fields.get(f"{name}_identified", False) or signal.identified
    for field_name, value in value_fields(signal).items():
        if isinstance(value, list):
            fields[field_name] = list(dict.fromkeys([*fields.get(field_name, []), *value]))
        elif value is not None:
            fields[field_name] = value


def value_fields(signal: DimensionSignal) -> dict[str, str | list[str] | None]:
    """The dimension's value fields (`schemas.DIMENSION_FIELDS`) filled from the signal."""
    if signal.dimension is Dimension.DECISION_CRITERIA:
        # A model may name a single criterion in `value`; it is a criterion all the same.
        criteria = signal.criteria or ([signal.value] if signal.value else [])
        return {"decision_criteria": criteria}
    first, *rest = DIMENSION_FIELDS[signal.dimension]
    values: dict[str, str | list[str] | None] = {first: signal.value}
    if rest:  # authority: contact, then role
        values[rest[0]] = signal.role
    return values


def from_extraction(extraction: QualificationExtraction) -> ExtractedSignals:
    """The lean form of a full extraction: one signal per dimension that differs from its
    defaults. The inverse of `to_extraction` (used by tests, the eval and the size report)."""
    signals = []
    for dimension, names in DIMENSION_FIELDS.items():
        model = signals_of(extraction, dimension)
        name = dimension.value
        identified = bool(getattr(model, f"{name}_identified", False))
        confidence: float = getattr(model, f"{name}_confidence")
        evidence: list[str] = getattr(model, f"{name}_evidence")
        values = [getattr(model, field_name) for field_name in names]
        if not (identified or confidence or evidence or any(values)):
            continue
        signal: dict[str, Any] = {
            "dimension": dimension,
            "identified": identified,
            "confidence": confidence,
            "evidence": evidence,
        }
        if dimension is Dimension.DECISION_CRITERIA:
            signal["criteria"] = values[0]
        else:
            signal["value"] = values[0]
            if len(values) > 1:
                signal["role"] = values[1]
        signals.append(DimensionSignal.model_validate(signal))
    return ExtractedSignals(
        signals=signals,
        overall_confidence=extraction.overall_confidence,
        key_insights=extraction.key_insights,
        recommended_next_questions=extraction.recommended_next_questions,
        stage_walk=[
            WalkStep(stage=step.stage, reason=step.reason, quote=step.quote or "")
            for step in extraction.stage_walk
        ],
        suggested_stage=extraction.suggested_stage,
        stage_reason=extraction.stage_reason,
    )
