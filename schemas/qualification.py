"""The qualification signals: what the LLM extracts and the state keeps (CONTRACT.md section 2).

The flat BANT and MEDDIC models are built from the dimension table (schemas.dimensions), so
their fields, in the table's order, are the contract's JSON."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import SkipJsonSchema

from schemas.dimensions import DIMENSIONS, DimensionSpec, DimensionTable, Group, ValueKind
from schemas.enums import DealStage, Dimension, Speaker

Confidence = Annotated[float, Field(ge=0.0, le=1.0)]
ShortText = Annotated[str, Field(max_length=2000)]


class GroupSignals(BaseModel):
    """A flat signals model (BANT or MEDDIC), built from the dimension table by `group_model`:
    per dimension `D_identified` (when flagged), `D_confidence`, `D_evidence`, its value fields."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    # The table rows this model holds, so that code reading a model knows its dimensions.
    dimensions: ClassVar[tuple[DimensionSpec, ...]] = ()

    if TYPE_CHECKING:  # the fields are the table's: the type checker cannot list them

        def __getattr__(self, name: str) -> Any: ...


def group_model(table: DimensionTable, group: Group) -> type[GroupSignals]:
    """The flat model of `group`'s dimensions, fields in the table's order."""
    fields: dict[str, Any] = {}
    for row in table.in_group(group):
        if row.identified_field is not None:
            fields[row.identified_field] = (bool, False)
        fields[row.confidence_field] = (Confidence, 0.0)
        fields[row.evidence_field] = (list[str], Field(default_factory=list))
        for value in row.values:
            if value.kind is ValueKind.LIST:
                fields[value.name] = (list[ShortText], Field(default_factory=list))
            else:
                fields[value.name] = (ShortText | None, None)
    model = create_model(
        f"{group.heading}Signals", __base__=GroupSignals, __module__=__name__, **fields
    )
    model.dimensions = table.in_group(group)
    return model


if TYPE_CHECKING:
    BANTSignals = GroupSignals
    MEDDICSignals = GroupSignals
else:
    BANTSignals = group_model(DIMENSIONS, Group.BANT)
    MEDDICSignals = group_model(DIMENSIONS, Group.MEDDIC)


class QualificationSignals(BaseModel):
    """The fields an extraction and the stored state have in common."""

    model_config = ConfigDict(extra="ignore")

    bant: BANTSignals = Field(default_factory=lambda: BANTSignals())
    meddic: MEDDICSignals = Field(default_factory=lambda: MEDDICSignals())
    overall_confidence: Confidence = 0.0
    key_insights: list[ShortText] = Field(default_factory=list)
    recommended_next_questions: list[ShortText] = Field(default_factory=list)

    @classmethod
    def dimension_table(cls) -> DimensionTable:
        """The table this model's BANT and MEDDIC fields were built from."""
        return _table_of(cls)

    def spec(self, dimension: str) -> DimensionSpec:
        return _table_of(type(self)).spec(dimension)


@cache
def _table_of(model: type[QualificationSignals]) -> DimensionTable:
    groups = (model.model_fields[group.value].annotation for group in Group)
    return DimensionTable(tuple(row for group in groups for row in _rows(group)))


def _rows(model: Any) -> tuple[DimensionSpec, ...]:
    rows: tuple[DimensionSpec, ...] = model.dimensions
    return rows


class QualificationState(QualificationSignals):
    """The merged qualification of one conversation, stored as `qualification_data`."""

    last_updated: AwareDatetime | None = None


class StageStep(BaseModel):
    """One step of a stage walk."""

    model_config = ConfigDict(extra="ignore")

    # v3: one legal move, why, and the words of the turns that show it.
    stage: DealStage
    reason: Annotated[str, Field(max_length=500)]
    quote: ShortText | None = Field(default=None, description="Verbatim from one turn")
    # Who said the quote: set by the evidence check from the turn the quote stands in (whatever
    # a model writes here is replaced), so it is not part of the schema a model is sent.
    speaker: SkipJsonSchema[Speaker | None] = None


class QualificationExtraction(QualificationSignals):
    """The LLM's response model: the signals found in the new turns, plus a stage proposal:
    a stage walk (v3), or the older single `suggested_stage`."""

    stage_walk: list[StageStep] = Field(default_factory=list, description="See the prompt")
    suggested_stage: DealStage | None = Field(
        default=None,
        description="The deal stage the conversation is in now, if the turns show it; else null.",
    )
    stage_reason: Annotated[str, Field(max_length=500)] | None = Field(
        default=None, description="Why that stage, in one sentence."
    )

    def proposed_walk(self) -> tuple[list[StageStep], bool]:
        """The steps proposed, and whether each must carry its quote: the walk when there is
        one (its end wins over `suggested_stage`), else `suggested_stage` as a one-step walk
        without a quote (the pre-v3 form, judged as before)."""
        if self.stage_walk:
            return list(self.stage_walk), True
        if self.suggested_stage is None:
            return [], False
        reason = self.stage_reason or ""
        return [StageStep(stage=self.suggested_stage, reason=reason)], False


_Model = TypeVar("_Model", bound=QualificationSignals)


@dataclass(frozen=True, kw_only=True)
class QualificationModels:
    """The models of one dimension table: `bant` and `meddic` built from it; `state` and
    `extraction` subclass this module's own (built from `DIMENSIONS`) with those two fields
    replaced, so a stored state and an update event, which hold a `QualificationState`, take
    them and serialize them as they are."""

    table: DimensionTable
    bant: type[GroupSignals]
    meddic: type[GroupSignals]
    state: type[QualificationState]
    extraction: type[QualificationExtraction]


def qualification_models(table: DimensionTable) -> QualificationModels:
    """What the pipeline needs to carry another table's dimensions (with `lean_model`)."""
    bant, meddic = group_model(table, Group.BANT), group_model(table, Group.MEDDIC)
    groups: dict[str, Any] = {
        "bant": (bant, Field(default_factory=bant)),
        "meddic": (meddic, Field(default_factory=meddic)),
    }

    def derived(base: type[_Model]) -> type[_Model]:
        model: type[_Model] = create_model(
            base.__name__, __base__=base, __module__=__name__, __doc__=base.__doc__, **groups
        )
        return model

    return QualificationModels(
        table=table,
        bant=bant,
        meddic=meddic,
        state=derived(QualificationState),
        extraction=derived(QualificationExtraction),
    )


# Each dimension's value fields, by name (CONTRACT.md section 2).
DIMENSION_FIELDS: dict[Dimension, tuple[str, ...]] = {
    Dimension(row.name): row.value_names for row in DIMENSIONS
}


def signals_of(signals: QualificationSignals, dimension: str) -> GroupSignals:
    """The flat model (BANT or MEDDIC) that holds `dimension`'s fields."""
    model: GroupSignals = getattr(signals, signals.spec(dimension).group.value)
    return model


def is_identified(signals: QualificationSignals, dimension: str) -> bool:
    return signals.spec(dimension).is_identified(signals_of(signals, dimension))
