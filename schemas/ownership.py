"""Who owns a dimension, what the AI suggests beside it, and what a deal still lacks (v2)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from schemas.enums import DealStage, Dimension
from schemas.qualification import Confidence


class Actor(BaseModel):
    """Who made a change that did not come from the model: a person or a system of record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["user", "crm", "system"]
    id: Annotated[str, Field(min_length=1, max_length=200)]

    @field_validator("id")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        # Stored in jsonb (owners, overrides, stage_transitions), which cannot hold U+0000.
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    def __str__(self) -> str:
        return f"{self.type}:{self.id}"


class Owner(BaseModel):
    """A human-owned (locked) dimension: extractions never change it, only overrides do."""

    actor: Actor
    since: AwareDatetime


class Suggestion(BaseModel):
    """The AI's latest view of a human-owned dimension, where it differs from the owned value."""

    values: dict[str, Any] = Field(description="The dimension's value fields as the AI sees them")
    identified: bool
    confidence: Confidence
    evidence: list[str] = Field(default_factory=list)
    version: int = Field(description="The state version that recorded this suggestion")


class NextStage(BaseModel):
    """The next stage of the pipeline and the dimensions its exit criteria still lack."""

    stage: DealStage
    missing: list[Dimension] = Field(default_factory=list)
