"""What an extraction changes in the state it was merged into. Pure.

Its signals merged into the locked qualification (a person's dimensions stay as they set them;
the AI's differing view becomes a suggestion), and its stage walk judged step by step against
that merged qualification (stages.py, criteria.py).
"""

from __future__ import annotations

from datetime import datetime

from schemas import (
    ConversationState,
    DealStage,
    ExtractionInfo,
    QualificationExtraction,
    QualificationState,
    StageChange,
    StageMove,
)
from worker.extract.port import ExtractionResult
from worker.qualify.criteria import StageCriteria, StepVerdict, judge_ai_walk
from worker.qualify.merge import bounded, changed_fields, merge_qualification_signals
from worker.qualify.ownership import protect_owned

# A walk's reason names its last accepted step and where it stopped; the audit keeps it short.
MAX_WALK_REASON_CHARS = 1000


def merge_extraction(
    locked: ConversationState,
    updated: ConversationState,
    extraction: QualificationExtraction,
    *,
    now: datetime,
) -> tuple[ConversationState, list[str]]:
    """`updated` with the extraction merged into the locked qualification, and what changed.
    A person's dimensions stay as they set them; the AI's differing view is a suggestion."""
    extraction = bounded(extraction)  # its lists as a state keeps them, suggestions included
    merged = merge_qualification_signals(locked.qualification, extraction, now=now)
    merged, suggestions, suggested = protect_owned(
        locked.qualification,
        merged,
        extraction,
        locked.owners,
        locked.suggestions,
        locked.version + 1,
    )
    fields = changed_fields(locked.qualification, merged)
    fields += [f"suggestions.{dimension}" for dimension in suggested]
    update = {
        "qualification": merged,
        "confidence_score": merged.overall_confidence,
        "suggestions": suggestions,
    }
    return updated.model_copy(update=update), fields


def extraction_info(result: ExtractionResult, turns: int) -> ExtractionInfo:
    return ExtractionInfo(
        status=result.status,
        model=result.model,
        prompt_version=result.prompt_version,
        turns=turns,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        cache_read_tokens=result.cache_read_tokens,
        cache_write_tokens=result.cache_write_tokens,
        cost_usd=result.cost_usd,
    )


def judge_proposal(
    state: ConversationState,
    result: ExtractionResult,
    merged: QualificationState,
    criteria: StageCriteria,
) -> tuple[StageChange | None, DealStage | None]:
    """The proposal's record and the `stalled_from` the state has if it is applied.

    The proposal is a stage walk (a bare `suggested_stage` is a walk of one step), judged
    step by step against the merged qualification: what these turns showed counts. Steps that
    stay where the deal is propose nothing: a walk of only those is no proposal, nothing to
    record."""
    assert result.extraction is not None
    steps, quotes_required = result.extraction.proposed_walk()
    verdicts = judge_ai_walk(
        state.deal_stage,
        state.stalled_from,
        steps,
        merged,
        criteria,
        quotes_required=quotes_required,
    )
    if not verdicts:
        return None, state.stalled_from
    moves = [_move(verdict) for verdict in verdicts]
    accepted = [move for move in moves if move.accepted]
    if not accepted:  # the first step was rejected: the deal stays
        first = moves[0]
        change = StageChange(**first.model_dump(), steps=moves)
        return change, state.stalled_from
    rejected = [move for move in moves if not move.accepted]
    reason = accepted[-1].reason
    if rejected:
        reason = f"{reason}; stopped before {rejected[0].to_stage.value}: {rejected[0].reason}"
    change = StageChange(
        from_stage=state.deal_stage,
        to_stage=accepted[-1].to_stage,
        accepted=True,
        reason=reason[:MAX_WALK_REASON_CHARS],
        steps=moves,
    )
    return change, verdicts[len(accepted) - 1].judgement.stalled_from


def _move(verdict: StepVerdict) -> StageMove:
    """A judged step as recorded: an accepted move is explained by the model, a rejected one
    by the stage machine."""
    step, judgement = verdict.step, verdict.judgement
    reason = (step.reason if judgement.accepted else judgement.reason) or (
        f"{verdict.from_stage.value} -> {step.stage.value}"
    )
    return StageMove(
        from_stage=verdict.from_stage,
        to_stage=step.stage,
        accepted=judgement.accepted,
        reason=reason,
    )
