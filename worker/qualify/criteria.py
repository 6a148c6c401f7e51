"""Exit criteria: what the qualification must show before the AI may move a deal forward.

CONTRACT.md section 4. An AI proposal to move forward into a stage is accepted only when the
merged qualification has every dimension that stage requires; a stage requires its own list
plus the lists of every stage before it in the pipeline.

`STAGE_CRITERIA` replaces the default table:
- unset or empty: the default table below;
- `off`: no criteria (the stage machine alone decides);
- a JSON object `{stage: [dimension, ...]}`: each stage's OWN list, replacing the default
  table as a whole (a stage left out has no list of its own). Accumulation over the pipeline
  applies as for the default, so `{"qualification": ["need"], "evaluation": ["budget"]}` makes
  evaluation require need and budget. Keys are the stages a deal moves forward into:
  discovery, qualification, evaluation, negotiation, closed_won.

Criteria bind forward moves by the AI only: stalling, losing a deal and resuming a stalled deal
to where it was (or earlier) need none; resuming one step past `stalled_from` needs that
stage's criteria.

Evidence (v3) binds the AI too: each step of a stage walk needs its verbatim quote (one that
survived the evidence check), and closing a deal as lost needs one from a prospect's turn,
whatever form the proposal takes. A stage walk is judged step by step, each from where the
previous one left the deal, all against the same merged qualification; it stops at the first
rejected step. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from schemas import (
    DealStage,
    Dimension,
    NextStage,
    QualificationSignals,
    Speaker,
    StageStep,
    is_identified,
)
from worker.qualify.stages import (
    CLOSED,
    PIPELINE,
    check_transition,
    is_forward,
    resume_point,
    stalled_from_after,
)

OFF = "off"
# The stages a deal can move forward into: the ones that may carry criteria.
CRITERIA_STAGES: tuple[DealStage, ...] = PIPELINE[1:]

StageLists = tuple[tuple[DealStage, tuple[Dimension, ...]], ...]


@dataclass(frozen=True)
class StageCriteria:
    """Each stage's own required dimensions; `required` adds those of the stages before it."""

    own: StageLists = ()

    def required(self, stage: DealStage) -> tuple[Dimension, ...]:
        """Everything `stage` requires, earlier stages' dimensions first, without repeats."""
        if stage not in PIPELINE:
            return ()
        earlier = PIPELINE[: PIPELINE.index(stage) + 1]
        lists = dict(self.own)
        ordered = (d for s in earlier for d in lists.get(s, ()))
        return tuple(dict.fromkeys(ordered))


def _dimensions(*names: str) -> tuple[Dimension, ...]:
    return tuple(Dimension(name) for name in names)


# Paper process and competition (v3) are known but required by no stage unless configured.
DEFAULT_CRITERIA = StageCriteria(
    own=(
        (DealStage.DISCOVERY, ()),
        (DealStage.QUALIFICATION, _dimensions("need", "identify_pain")),
        (DealStage.EVALUATION, _dimensions("budget", "authority", "timeline")),
        (
            DealStage.NEGOTIATION,
            _dimensions("economic_buyer", "decision_criteria", "decision_process"),
        ),
        (DealStage.CLOSED_WON, ()),
    )
)
NO_CRITERIA = StageCriteria()


def parse_stage_criteria(text: str) -> StageCriteria:
    """The `STAGE_CRITERIA` setting; ValueError with a one-line message when it is malformed."""
    value = text.strip()
    if not value:
        return DEFAULT_CRITERIA
    if value.lower() == OFF:
        return NO_CRITERIA
    try:
        document = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON and not `off` ({error})") from None
    if not isinstance(document, dict):
        raise ValueError('expected a JSON object like {"evaluation": ["budget"]}, or `off`')
    return StageCriteria(own=tuple(_stage_list(key, dims) for key, dims in document.items()))


def _stage_list(key: str, dimensions: object) -> tuple[DealStage, tuple[Dimension, ...]]:
    stages = ", ".join(s.value for s in CRITERIA_STAGES)
    if key not in {s.value for s in CRITERIA_STAGES}:
        raise ValueError(f"unknown stage {key!r} (stages with criteria: {stages})")
    if not isinstance(dimensions, list):
        raise ValueError(f"{key}: expected a list of dimensions, got {json.dumps(dimensions)}")
    names = {d.value for d in Dimension}
    for name in dimensions:
        if not isinstance(name, str) or name not in names:
            choices = ", ".join(d.value for d in Dimension)
            raise ValueError(f"{key}: unknown dimension {json.dumps(name)} (one of: {choices})")
    return DealStage(key), tuple(dict.fromkeys(Dimension(name) for name in dimensions))


def missing_for(
    stage: DealStage, qualification: QualificationSignals, criteria: StageCriteria
) -> list[Dimension]:
    """The dimensions `stage` requires that `qualification` has not identified, in order."""
    return [d for d in criteria.required(stage) if not is_identified(qualification, d)]


@dataclass(frozen=True, kw_only=True)
class StageJudgement:
    """The verdict on an AI proposal, and the state's `stalled_from` if it is applied."""

    accepted: bool
    reason: str
    stalled_from: DealStage | None


def judge_ai_proposal(
    stage: DealStage,
    stalled_from: DealStage | None,
    proposed: DealStage,
    merged: QualificationSignals,
    criteria: StageCriteria = DEFAULT_CRITERIA,
) -> StageJudgement:
    """The stage machine first; then, for a forward move, the target's exit criteria against
    the MERGED qualification (what this extraction found counts)."""
    check = check_transition(stage, proposed, stalled_from)
    rejected = StageJudgement(accepted=False, reason=check.reason, stalled_from=stalled_from)
    if not check.accepted:
        return rejected
    if is_forward(stage, proposed, stalled_from):
        if missing := missing_for(proposed, merged, criteria):
            lacking = ", ".join(d.value for d in missing)
            reason = f"{stage.value} -> {proposed.value}: missing {lacking}"
            return StageJudgement(accepted=False, reason=reason, stalled_from=stalled_from)
    after = stalled_from_after(stage, proposed, stalled_from)
    return StageJudgement(accepted=True, reason=check.reason, stalled_from=after)


def evidence_lacking(step: StageStep, *, quote_required: bool) -> str | None:
    """Why the step's evidence does not suffice, or None when it does. The evidence check
    (worker/extract/evidence.py) has removed quotes that are not in the turns."""
    if step.stage is DealStage.CLOSED_LOST and step.speaker is not Speaker.PROSPECT:
        if step.quote is None:
            return "closing as lost needs a quote from a prospect turn; none was found in the turns"
        return "closing as lost needs a quote from a prospect turn; the quote is the rep's"
    if quote_required and step.quote is None:
        return "no quote from the turns supports this step"
    return None


@dataclass(frozen=True, kw_only=True)
class StepVerdict:
    """One judged step of a walk: from where to where, and the verdict."""

    from_stage: DealStage
    step: StageStep
    judgement: StageJudgement


def judge_ai_walk(
    stage: DealStage,
    stalled_from: DealStage | None,
    steps: Sequence[StageStep],
    merged: QualificationSignals,
    criteria: StageCriteria = DEFAULT_CRITERIA,
    *,
    quotes_required: bool = True,
) -> list[StepVerdict]:
    """The steps judged in order, each from where the accepted ones before it left the deal:
    every accepted step, then the first rejected one (the walk stops there). A step that stays
    where the deal is proposes nothing and is skipped. `quotes_required`: False only for the
    pre-v3 single `suggested_stage`, which has no quote to give (closed_lost still needs one)."""
    verdicts: list[StepVerdict] = []
    for step in steps:
        if step.stage is stage:
            continue
        judgement = judge_ai_proposal(stage, stalled_from, step.stage, merged, criteria)
        lacking = evidence_lacking(step, quote_required=quotes_required)
        if judgement.accepted and lacking is not None:
            reason = f"{stage.value} -> {step.stage.value}: {lacking}"
            judgement = StageJudgement(accepted=False, reason=reason, stalled_from=stalled_from)
        verdicts.append(StepVerdict(from_stage=stage, step=step, judgement=judgement))
        if not judgement.accepted:
            break
        stage, stalled_from = step.stage, judgement.stalled_from
    return verdicts


def next_stage(
    stage: DealStage,
    stalled_from: DealStage | None,
    qualification: QualificationSignals,
    criteria: StageCriteria = DEFAULT_CRITERIA,
) -> NextStage | None:
    """The gap report: the next stage of the pipeline and what its criteria still lack.

    For an open stage, the stage after it (`closed_won` after negotiation). For `stalled`, the
    stage it resumes to (`stalled_from`; prospecting for legacy rows): resuming is its next step.
    Its `missing` is then usually empty, unless a person set the stage past the criteria. None
    for a closed deal."""
    if stage in CLOSED:
        return None
    if stage is DealStage.STALLED:
        target = resume_point(stalled_from)
    else:
        target = PIPELINE[PIPELINE.index(stage) + 1]
    return NextStage(stage=target, missing=missing_for(target, qualification, criteria))
