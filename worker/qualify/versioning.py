"""The next version of a conversation: turns and an extraction applied to its locked state.

Pure: the service calls this inside its write transaction, with the state it just locked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from schemas import (
    ConversationKey,
    ConversationState,
    ConversationTurn,
    DealStage,
    ExtractionInfo,
    NextStage,
    QualificationState,
    QualificationUpdated,
    StageChange,
    update_event_id,
)
from worker.extract.port import ExtractionResult
from worker.qualify.criteria import (
    DEFAULT_CRITERIA,
    StageCriteria,
    judge_ai_proposal,
    next_stage,
)
from worker.qualify.merge import changed_fields, merge_qualification_signals


@dataclass(frozen=True, kw_only=True)
class NextVersion:
    state: ConversationState
    stage_change: StageChange | None
    changed_fields: list[str]
    next_stage: NextStage | None  # the gap report of `state`


def order_turns(turns: Sequence[ConversationTurn]) -> list[ConversationTurn]:
    """Producer's sequence, then occurred_at; the sort is stable, so offset order breaks ties."""
    return sorted(turns, key=lambda t: (t.sequence is None, t.sequence or 0, t.occurred_at))


def next_version(
    state: ConversationState,
    applied: Sequence[ConversationTurn],
    result: ExtractionResult,
    *,
    now: datetime,
    criteria: StageCriteria = DEFAULT_CRITERIA,
) -> NextVersion:
    """`applied` are the turns newly stored in this transaction, in conversation order (none
    for a re-extraction of stored turns: counters and contact details then stay as they are).
    `criteria` are the stages' exit criteria (the `STAGE_CRITERIA` setting)."""
    updated = _with_turns(state, applied) if applied else state
    fields: list[str] = []
    stage_change = None
    if result.extraction is not None:
        merged = merge_qualification_signals(state.qualification, result.extraction, now=now)
        fields = changed_fields(state.qualification, merged)
        updated = updated.model_copy(
            update={"qualification": merged, "confidence_score": merged.overall_confidence}
        )
        stage_change, stalled_from = _stage_proposal(state, result, merged, criteria)
        if stage_change is not None and stage_change.accepted:
            stage_update = {"deal_stage": stage_change.to_stage, "stalled_from": stalled_from}
            updated = updated.model_copy(update=stage_update)
            fields.append("deal_stage")
    updated = updated.model_copy(update={"updated_at": now, "version": state.version + 1})
    gaps = next_stage(updated.deal_stage, updated.stalled_from, updated.qualification, criteria)
    return NextVersion(
        state=updated, stage_change=stage_change, changed_fields=fields, next_stage=gaps
    )


def _with_turns(state: ConversationState, applied: Sequence[ConversationTurn]) -> ConversationState:
    """Counters and contact details follow the turns; null fields keep the stored value."""
    latest = max(applied, key=lambda t: t.occurred_at)
    update: dict[str, object] = {
        "interaction_count": state.interaction_count + len(applied),
        "contact_email": applied[-1].contact_email,
    }
    if state.last_interaction is None or latest.occurred_at >= state.last_interaction:
        update |= {"last_interaction": latest.occurred_at, "last_channel": latest.channel}
    if names := [t.contact_name for t in applied if t.contact_name is not None]:
        update["contact_name"] = names[-1]
    if personas := [t.persona_type for t in applied if t.persona_type is not None]:
        update["persona_type"] = personas[-1]
    return state.model_copy(update=update)


def _stage_proposal(
    state: ConversationState,
    result: ExtractionResult,
    merged: QualificationState,
    criteria: StageCriteria,
) -> tuple[StageChange | None, DealStage | None]:
    """The proposal's record and the `stalled_from` the state has if it is applied.

    A suggestion of the stage the deal is already in is no proposal: nothing to record. Exit
    criteria are checked against the merged qualification: what these turns showed counts."""
    assert result.extraction is not None
    proposed = result.extraction.suggested_stage
    if proposed is None or proposed == state.deal_stage:
        return None, state.stalled_from
    verdict = judge_ai_proposal(state.deal_stage, state.stalled_from, proposed, merged, criteria)
    # An accepted move is explained by the model; a rejected one by the stage machine.
    reason = (result.extraction.stage_reason if verdict.accepted else verdict.reason) or (
        f"{state.deal_stage.value} -> {proposed.value}"
    )
    change = StageChange(
        from_stage=state.deal_stage, to_stage=proposed, accepted=verdict.accepted, reason=reason
    )
    return change, verdict.stalled_from


def update_event(
    key: ConversationKey,
    before: ConversationState,
    version: NextVersion,
    result: ExtractionResult,
    *,
    turn_event_ids: Sequence[UUID],
    extracted_turns: int,
    now: datetime,
) -> QualificationUpdated:
    state = version.state
    return QualificationUpdated(
        event_id=update_event_id(key, state.version),
        tenant_id=key.tenant_id,
        account_id=key.account_id,
        contact_id=key.contact_id,
        version=state.version,
        deal_stage=state.deal_stage,
        previous_stage=before.deal_stage,
        stage_change=version.stage_change,
        qualification=state.qualification,
        changed_fields=version.changed_fields,
        interaction_count=state.interaction_count,
        confidence_score=state.confidence_score,
        extraction=ExtractionInfo(
            status=result.status,
            model=result.model,
            prompt_version=result.prompt_version,
            turns=extracted_turns,
        ),
        turn_event_ids=list(turn_event_ids),
        next_stage=version.next_stage,
        occurred_at=now,
    )
