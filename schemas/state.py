"""The stored state of one conversation (CONTRACT.md section 5, `tenant.conversation_states`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SerializeAsAny

from schemas.enums import Channel, DealStage, PersonaType
from schemas.ownership import Owner, Suggestion
from schemas.qualification import QualificationState


class NextAction(BaseModel):
    """A follow-up suggested for the rep, kept in `next_actions`."""

    description: Annotated[str, Field(min_length=1, max_length=500)]
    priority: Literal["low", "medium", "high"] = "medium"
    due_at: AwareDatetime | None = None


class ConversationState(BaseModel):
    model_config = ConfigDict(validate_assignment=True)

    id: UUID | None = None
    tenant_id: UUID
    account_id: Annotated[str, Field(min_length=1, max_length=100)]
    contact_id: Annotated[str, Field(min_length=1, max_length=100)]
    contact_email: Annotated[str, Field(max_length=255)]
    contact_name: Annotated[str, Field(max_length=200)] | None = None
    deal_stage: DealStage = DealStage.PROSPECTING
    persona_type: PersonaType = PersonaType.MANAGER
    qualification: SerializeAsAny[QualificationState] = Field(
        default_factory=lambda: QualificationState()
    )
    interaction_count: Annotated[int, Field(ge=0)] = 0
    last_interaction: AwareDatetime | None = None
    last_channel: Channel | None = None
    escalated: bool = False
    escalation_reason: Annotated[str, Field(max_length=500)] | None = None
    confidence_score: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    next_actions: list[NextAction] = Field(default_factory=list)
    follow_up_scheduled: AwareDatetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None
    version: Annotated[int, Field(ge=0)] = 0
    # v2: the open stage a stalled deal stalled from (CONTRACT.md section 4).
    stalled_from: DealStage | None = None
    # v2: human-owned dimensions and the AI's differing views of them (CONTRACT.md section 3).
    owners: dict[str, Owner] = Field(default_factory=dict)
    suggestions: dict[str, Suggestion] = Field(default_factory=dict)
    # v3: which life of its key this row is: n + 1 after n erasures (migration 0009).
    incarnation: Annotated[int, Field(ge=1)] = 1
