"""The lean response model the LLM fills in, and its conversion to a `QualificationExtraction`.

The full `QualificationExtraction` asks the model for every field of every dimension on every
call: about 6,000 characters of JSON schema sent, and 1,200 characters back even when the turns
say nothing. Here the model lists only the dimensions the new turns inform, one small
`DimensionSignal` each. Nothing in the schema sent carries a length limit (llama.cpp's grammar
compiler dies on `maxLength`): the limits are plain validators, so pydantic still enforces them
and instructor re-asks when they fail. Pure code; no I/O library is imported here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import DEFAULT_REF_TEMPLATE, GenerateJsonSchema, JsonSchemaMode

from schemas import DealStage, QualificationExtraction, signals_of
from schemas.dimensions import DIMENSIONS, VALUE, DimensionSpec, DimensionTable, Group
from schemas.enums import dimension_enum
from schemas.qualification import QualificationModels

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


class SignalBase(BaseModel):
    """What the new turns show about one dimension; `signal_model` adds the value slots."""

    model_config = ConfigDict(extra="ignore")

    dimension: StrEnum
    identified: bool = False
    confidence: Confidence = 0.0
    evidence: list[str] = Field(default_factory=list, description="Verbatim quotes")

    if TYPE_CHECKING:  # the value slots are the table's: the type checker cannot list them

        def __getattr__(self, name: str) -> Any: ...


def signal_model(table: DimensionTable) -> type[SignalBase]:
    """`DimensionSignal` for `table`: its dimension names, then one field per value slot the
    table's value fields use (`value`, `role`, `criteria`, ...)."""
    slots: dict[str, Any] = {}
    for slot in table.slots():
        if slot.many:
            slots[slot.name] = (
                list[Text],
                Field(default_factory=list, description=slot.description),
            )
        else:
            slots[slot.name] = (Text | None, Field(default=None, description=slot.description))
    return create_model(
        "DimensionSignal",
        __base__=SignalBase,
        __module__=__name__,
        __doc__="What the new turns show about one dimension.",
        dimension=(dimension_enum(table), ...),
        **slots,
    )


if TYPE_CHECKING:
    DimensionSignal = SignalBase
else:
    DimensionSignal = signal_model(DIMENSIONS)


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

    # What a parsed reply becomes; a lean model of another table (`lean_model`) has its own.
    extraction_model: ClassVar[type[QualificationExtraction]] = QualificationExtraction
    signal_model: ClassVar[type[SignalBase]] = DimensionSignal

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


def lean_model(models: QualificationModels) -> type[ExtractedSignals]:
    """`ExtractedSignals` for the dimension table `models` were built from."""
    signal = signal_model(models.table)
    model = create_model(
        "ExtractedSignals",
        __base__=ExtractedSignals,
        __module__=__name__,
        __doc__=ExtractedSignals.__doc__,
        signals=(list[signal], Field(default_factory=list)),  # type: ignore[valid-type]
    )
    model.extraction_model = models.extraction
    model.signal_model = signal
    return model


def to_extraction(lean: ExtractedSignals) -> QualificationExtraction:
    """The full extraction `lean` stands for; dimensions it does not list keep their defaults.

    A dimension listed twice is combined: evidence joined, the higher confidence, the later
    non-null values, identified if either says so."""
    extraction = type(lean).extraction_model
    table = extraction.dimension_table()
    groups: dict[str, dict[str, Any]] = {group.value: {} for group in Group}
    for signal in lean.signals:
        spec = table.spec(signal.dimension.value)
        _add_signal(groups[spec.group.value], spec, signal)
    return extraction.model_validate(
        {
            **groups,
            "overall_confidence": lean.overall_confidence,
            "key_insights": lean.key_insights,
            "recommended_next_questions": lean.recommended_next_questions,
            "stage_walk": [step.model_dump() for step in lean.stage_walk],
            "suggested_stage": lean.suggested_stage,
            "stage_reason": lean.stage_reason,
        }
    )


def _add_signal(fields: dict[str, Any], spec: DimensionSpec, signal: SignalBase) -> None:
    evidence: list[str] = fields.get(spec.evidence_field, [])
    fields[spec.evidence_field] = list(dict.fromkeys([*evidence, *signal.evidence]))
    fields[spec.confidence_field] = max(fields.get(spec.confidence_field, 0.0), signal.confidence)
    if spec.identified_field is not None:  # else its list is its identification
        fields[spec.identified_field] = (
            fields.get(spec.identified_field, False) or signal.identified
        )
    for field_name, value in value_fields(spec, signal).items():
        if isinstance(value, list):
            fields[field_name] = list(dict.fromkeys([*fields.get(field_name, []), *value]))
        elif value is not None:
            fields[field_name] = value


def value_fields(spec: DimensionSpec, signal: SignalBase) -> dict[str, str | list[str] | None]:
    """The dimension's value fields filled from the signal's slots."""
    values: dict[str, str | list[str] | None] = {}
    uses_value = any(field.slot is VALUE for field in spec.values)
    for field in spec.values:
        given = getattr(signal, field.slot.name)
        if field.slot.many and not given and not uses_value and signal.value:
            # A model may name a single item in `value`; it is an item all the same.
            given = [signal.value]
        values[field.name] = given
    return values


def from_extraction(extraction: QualificationExtraction) -> ExtractedSignals:
    """The lean form of a full extraction: one signal per dimension that differs from its
    defaults. The inverse of `to_extraction` (used by tests, the eval and the size report)."""
    signals = []
    for spec in extraction.dimension_table():
        model = signals_of(extraction, spec.name)
        identified = bool(getattr(model, spec.identified_field)) if spec.identified_field else False
        confidence = spec.confidence(model)
        evidence = spec.evidence(model)
        values = spec.value_fields(model)
        if not (identified or confidence or evidence or any(values.values())):
            continue
        signal: dict[str, Any] = {
            "dimension": spec.name,
            "identified": identified,
            "confidence": confidence,
            "evidence": evidence,
        }
        signal |= {field.slot.name: values[field.name] for field in spec.values}
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
