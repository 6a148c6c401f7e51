"""The next version of a conversation. Pure.

Every change of a state — new turns, a re-extraction, signals merged through the repository
API, an override or an inactivity stall — is described as a `NextVersion` computed
from the state just locked; `commit.commit_under_lock` writes it, its stage record and its event
in that one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from uuid import UUID

from schemas import (
    OPEN_STAGES,
    Actor,
    ConversationKey,
    ConversationState,
    ConversationTurn,
    DealStage,
    ExtractionInfo,
    NextStage,
    QualificationSignals,
    StageChange,
    VersionSource,
)
from worker.extract.port import ExtractionResult
from worker.qualify.criteria import (
    DEFAULT_CRITERIA,
    StageCriteria,
    next_stage,
)
from worker.qualify.judging import extraction_info, judge_proposal, merge_extraction
from worker.qualify.merge import changed_fields, merge_qualification_signals
from worker.qualify.stages import resume_on_activity


@dataclass(frozen=True, kw_only=True)
class NextVersion:
    """A state version to commit: the state after the change and what the event says of it."""

    before: ConversationState  # the state as locked
    state: ConversationState  # version + 1
    source: VersionSource
    changed_fields: list[str] = field(default_factory=list)
    stage_change: StageChange | None = None
    # A deal stalled by inactivity that a turn resumed: that move, recorded before
    # `stage_change` (which is then judged from the resumed stage) in the same version.
    resumed: StageChange | None = None
    extraction: ExtractionInfo | None = None
    turn_event_ids: list[UUID] = field(default_factory=list)
    actor: Actor | None = None
    next_stage: NextStage | None = None

    @property
    def key(self) -> ConversationKey:
        return ConversationKey(self.state.tenant_id, self.state.account_id, self.state.contact_id)


def order_turns(turns: Sequence[ConversationTurn]) -> list[ConversationTurn]:
    """Producer's sequence, then occurred_at; the sort is stable, so offset order breaks ties."""
    return sorted(turns, key=lambda t: (t.sequence is None, t.sequence or 0, t.occurred_at))


def version_from_turns(
    state: ConversationState,
    applied: Sequence[ConversationTurn],
    result: ExtractionResult,
    *,
    extracted_turns: int,
    now: datetime,
    criteria: StageCriteria = DEFAULT_CRITERIA,
    stalled_by_inactivity: bool = False,
) -> NextVersion:
    """`applied` are the turns newly stored in this transaction, in conversation order.
    `criteria` are the stages' exit criteria (the `STAGE_CRITERIA` setting).

    `stalled_by_inactivity`: the locked state is `stalled` and the inactivity sweeper stalled
    it. These turns are activity, so the deal first resumes to `stalled_from`, and the
    extraction's own proposal is judged from there (CONTRACT.md section 4)."""
    resumed = resume_on_activity(state) if stalled_by_inactivity else None
    judged_from = resumed[0] if resumed is not None else state
    version = _extracted(
        judged_from,
        _with_turns(judged_from, applied),
        result,
        source="turns",
        extracted_turns=extracted_turns,
        turn_event_ids=[t.event_id for t in applied],
        now=now,
        criteria=criteria,
    )
    if resumed is None:
        return version
    fields = version.changed_fields
    return replace(
        version,
        before=state,  # the event's previous_stage is `stalled`, where the deal really was
        resumed=resumed[1],
        changed_fields=fields if "deal_stage" in fields else [*fields, "deal_stage"],
    )


def version_from_inactivity(
    state: ConversationState,
    *,
    now: datetime,
    days: int,
    criteria: StageCriteria = DEFAULT_CRITERIA,
) -> NextVersion:
    """The inactivity sweeper's version: an open deal, quiet for `days`, moves to `stalled`
    and remembers where it was. No extraction, no turns; the qualification stays as it is."""
    if state.deal_stage not in OPEN_STAGES:
        stage = state.deal_stage.value
        raise ValueError(f"only an open deal stalls for inactivity, not one in {stage}")
    change = StageChange(
        from_stage=state.deal_stage,
        to_stage=DealStage.STALLED,
        accepted=True,
        reason=f"no activity for {days} days",
    )
    stalled = state.model_copy(
        update={
            "deal_stage": DealStage.STALLED,
            "stalled_from": state.deal_stage,
            "updated_at": now,
            "version": state.version + 1,
        }
    )
    return NextVersion(
        before=state,
        state=stalled,
        source="inactivity",
        changed_fields=["deal_stage"],
        stage_change=change,
        next_stage=gap_report(stalled, criteria),
    )


def version_from_reextraction(
    state: ConversationState,
    result: ExtractionResult,
    *,
    extracted_turns: int,
    now: datetime,
    criteria: StageCriteria = DEFAULT_CRITERIA,
) -> NextVersion:
    """Stored turns extracted again: counters and contact details stay as they are."""
    return _extracted(
        state,
        state,
        result,
        source="reextract",
        extracted_turns=extracted_turns,
        turn_event_ids=[],
        now=now,
        criteria=criteria,
    )


def version_from_signals(
    state: ConversationState,
    signals: QualificationSignals,
    *,
    now: datetime,
    criteria: StageCriteria = DEFAULT_CRITERIA,
) -> NextVersion:
    """Signals merged by a caller of the repository API (no extraction, no stage proposal)."""
    merged = merge_qualification_signals(state.qualification, signals, now=now)
    updated = state.model_copy(
        update={"qualification": merged, "updated_at": now, "version": state.version + 1}
    )
    return NextVersion(
        before=state,
        state=updated,
        source="reextract",
        changed_fields=changed_fields(state.qualification, merged),
        next_stage=gap_report(updated, criteria),
    )


def gap_report(state: ConversationState, criteria: StageCriteria) -> NextStage | None:
    """What the state still lacks for the next stage (None for a closed deal)."""
    return next_stage(state.deal_stage, state.stalled_from, state.qualification, criteria)


def _extracted(
    locked: ConversationState,
    updated: ConversationState,
    result: ExtractionResult,
    *,
    source: VersionSource,
    extracted_turns: int,
    turn_event_ids: list[UUID],
    now: datetime,
    criteria: StageCriteria,
) -> NextVersion:
    fields: list[str] = []
    stage_change = None
    if result.extraction is not None:
        updated, fields = merge_extraction(locked, updated, result.extraction, now=now)
        stage_change, stalled_from = judge_proposal(locked, result, updated.qualification, criteria)
        if stage_change is not None and stage_change.accepted:
            stage_update = {"deal_stage": stage_change.to_stage, "stalled_from": stalled_from}
            updated = updated.model_copy(update=stage_update)
            fields.append("deal_stage")
    updated = updated.model_copy(update={"updated_at": now, "version": locked.version + 1})
    return NextVersion(
        before=locked,
        state=updated,
        source=source,
        changed_fields=fields,
        stage_change=stage_change,
        extraction=extraction_info(result, extracted_turns),
        turn_event_ids=turn_event_ids,
        next_stage=gap_report(updated, criteria),
    )


def _with_turns(state: ConversationState, applied: Sequence[ConversationTurn]) -> ConversationState:
    """Counters and contact details follow the turns; null fields keep the stored value."""
    if not applied:  # only turns stored earlier were extracted
        return state
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
