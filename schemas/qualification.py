"""The qualification signals: what the LLM extracts and the state keeps (CONTRACT.md section 2)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from schemas.enums import DealStage, Dimension, Speaker

Confidence = Annotated[float, Field(ge=0.0, le=1.0)]
ShortText = Annotated[str, Field(max_length=2000)]


class _Signals(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=True)


class BANTSignals(_Signals):
    budget_identified: bool = False
    budget_confidence: Confidence = 0.0
    budget_evidence: list[str] = Field(default_factory=list)
    budget_range: ShortText | None = None

    authority_identified: bool = False
    authority_confidence: Confidence = 0.0
    authority_evidence: list[str] = Field(default_factory=list)
    authority_contact: ShortText | None = None
    authority_role: ShortText | None = None

    need_identified: bool = False
    need_confidence: Confidence = 0.0
    need_evidence: list[str] = Field(default_factory=list)
    need_description: ShortText | None = None

    timeline_identified: bool = False
    timeline_confidence: Confidence = 0.0
    timeline_evidence: list[str] = Field(default_factory=list)
    timeline_description: ShortText | None = None


class MEDDICSignals(_Signals):
    metrics_identified: bool = False
    metrics_confidence: Confidence = 0.0
    metrics_evidence: list[str] = Field(default_factory=list)
    metrics_description: ShortText | None = None

    economic_buyer_identified: bool = False
    economic_buyer_confidence: Confidence = 0.0
    economic_buyer_evidence: list[str] = Field(default_factory=list)
    economic_buyer_contact: ShortText | None = None

    # No `_identified` flag: a non-empty list means identified (CONTRACT.md section 2).
    decision_criteria_confidence: Confidence = 0.0
    decision_criteria_evidence: list[str] = Field(default_factory=list)
    decision_criteria: list[ShortText] = Field(default_factory=list)

    decision_process_identified: bool = False
    decision_process_confidence: Confidence = 0.0
    decision_process_evidence: list[str] = Field(default_factory=list)
    decision_process_description: ShortText | None = None

    identify_pain_identified: bool = False
    identify_pain_confidence: Confidence = 0.0
    identify_pain_evidence: list[str] = Field(default_factory=list)
    pain_description: ShortText | None = None

    champion_identified: bool = False
    champion_confidence: Confidence = 0.0
    champion_evidence: list[str] = Field(default_factory=list)
    champion_contact: ShortText | None = None


class QualificationSignals(BaseModel):
    """The fields an extraction and the stored state have in common."""

    model_config = ConfigDict(extra="ignore")

    bant: BANTSignals = Field(default_factory=lambda: BANTSignals())
    meddic: MEDDICSignals = Field(default_factory=lambda: MEDDICSignals())
    overall_confidence: Confidence = 0.0
    key_insights: list[ShortText] = Field(default_factory=list)
    recommended_next_questions: list[ShortText] = Field(default_factory=list)


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


# Each dimension's value fields and the signals model that holds them (CONTRACT.md section 2).
# `decision_criteria` has no `_identified` flag: a non-empty list means identified.
DIMENSION_FIELDS: dict[Dimension, tuple[str, ...]] = {
    Dimension.BUDGET: ("budget_range",),
    Dimension.AUTHORITY: ("authority_contact", "authority_role"),
    Dimension.NEED: ("need_description",),
    Dimension.TIMELINE: ("timeline_description",),
    Dimension.METRICS: ("metrics_description",),
    Dimension.ECONOMIC_BUYER: ("economic_buyer_contact",),
    Dimension.DECISION_CRITERIA: ("decision_criteria",),
    Dimension.DECISION_PROCESS: ("decision_process_description",),
    Dimension.IDENTIFY_PAIN: ("pain_description",),
    Dimension.CHAMPION: ("champion_contact",),
}
BANT_DIMENSIONS = (Dimension.BUDGET, Dimension.AUTHORITY, Dimension.NEED, Dimension.TIMELINE)


def group_of(dimension: Dimension) -> str:
    """`bant` or `meddic`: the field of QualificationSignals that holds `dimension`."""
    return "bant" if dimension in BANT_DIMENSIONS else "meddic"


def signals_of(signals: QualificationSignals, dimension: Dimension) -> BANTSignals | MEDDICSignals:
    """The flat model (BANT or MEDDIC) that holds `dimension`'s fields."""
    return signals.bant if dimension in BANT_DIMENSIONS else signals.meddic


def is_identified(signals: QualificationSignals, dimension: Dimension) -> bool:
    model = signals_of(signals, dimension)
    if dimension is Dimension.DECISION_CRITERIA:
        return bool(model.decision_criteria)  # type: ignore[union-attr]
    return bool(getattr(model, f"{dimension.value}_identified"))
