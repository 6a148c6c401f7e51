"""The deal-stage machine v2 (CONTRACT.md section 4): where a stage proposal may go.

prospecting -> discovery -> qualification -> evaluation -> negotiation -> closed_won

- One step forward at a time. No skipping; the reason names the skipped stages.
- Backward moves between open stages are rejected: the contract says "forward only" for the
  pipeline, and the only way back it names is resuming from `stalled`. (A person's override may
  set any stage; it does not go through this machine.)
- Any open stage -> `stalled`; the state remembers `stalled_from`.
- `stalled` -> `stalled_from`, any earlier open stage, or the one right after `stalled_from`
  (resume and advance one step). Anything further skips stages and is rejected.
- Any open stage, `stalled` included -> `closed_lost`. `closed_won` only from `negotiation`
  (not from `stalled`: resume to negotiation first). Both closed stages are terminal.
- Staying in the same stage is always allowed (and is no proposal: callers record nothing).

A `stalled` deal without a `stalled_from` (rows stalled before v2), or with one that is not an
open stage, is treated as stalled from `prospecting`: it may resume to prospecting or advance to
discovery, never further. That is the safe reading: stalling must never let the AI skip ahead,
and a deal that really was further on can be put back by a person's override.

Inactivity (CONTRACT.md section 4): `is_inactive` is the inactivity sweeper's rule for stalling
an open deal, and `resume_on_activity` the move back when a turn arrives on a deal it stalled.

Exit criteria (what the qualification must show) live in `worker.qualify.criteria`; this module
knows only the shape of the pipeline. Pure: no I/O, no clock (the caller passes `now`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from schemas import CLOSED_STAGES, OPEN_STAGES, ConversationState, DealStage, StageChange

# Every stage that moving forward can reach, in order: the open stages, then the win.
PIPELINE: tuple[DealStage, ...] = (*OPEN_STAGES, DealStage.CLOSED_WON)
CLOSED: frozenset[DealStage] = frozenset(CLOSED_STAGES)
# Where a stalled deal without a usable `stalled_from` is taken to have stalled.
LEGACY_STALLED_FROM = DealStage.PROSPECTING


@dataclass(frozen=True, kw_only=True)
class TransitionCheck:
    accepted: bool
    reason: str


def resume_point(stalled_from: DealStage | None) -> DealStage:
    """The open stage a stalled deal resumes to (legacy or corrupt values: prospecting)."""
    if stalled_from is not None and stalled_from in OPEN_STAGES:
        return stalled_from
    return LEGACY_STALLED_FROM


def _targets(stage: DealStage, stalled_from: DealStage | None) -> frozenset[DealStage]:
    """Where `stage` may go, itself included; `stalled_from` counts only for `stalled`."""
    if stage in CLOSED:
        return frozenset({stage})
    if stage is DealStage.STALLED:
        position = PIPELINE.index(resume_point(stalled_from))
        # Up to one step past the resume point, but never to closed_won (only from negotiation).
        resumable = [s for s in PIPELINE[: position + 2] if s in OPEN_STAGES]
        return frozenset({stage, *resumable, DealStage.CLOSED_LOST})
    position = PIPELINE.index(stage)
    return frozenset({stage, PIPELINE[position + 1], DealStage.STALLED, DealStage.CLOSED_LOST})


# The table: (from, stalled_from) -> allowed targets. `stalled_from` is part of the key only for
# `stalled` (normalised by `resume_point`); every other stage is keyed with None.
TRANSITIONS: Mapping[tuple[DealStage, DealStage | None], frozenset[DealStage]] = MappingProxyType(
    {
        **{(s, None): _targets(s, None) for s in DealStage if s is not DealStage.STALLED},
        **{(DealStage.STALLED, s): _targets(DealStage.STALLED, s) for s in OPEN_STAGES},
    }
)

# Targets per stage when `stalled_from` is unknown (a stalled deal counts as stalled from
# prospecting). Prefer `allowed_targets(stage, stalled_from)`, which knows better.
VALID_TRANSITIONS: Mapping[DealStage, frozenset[DealStage]] = MappingProxyType(
    {stage: _targets(stage, None) for stage in DealStage}
)


def _table_key(
    stage: DealStage, stalled_from: DealStage | None
) -> tuple[DealStage, DealStage | None]:
    return (stage, resume_point(stalled_from)) if stage is DealStage.STALLED else (stage, None)


def allowed_targets(stage: DealStage, stalled_from: DealStage | None) -> frozenset[DealStage]:
    """Every stage the AI may move the deal to from `stage`, `stage` itself included."""
    return TRANSITIONS[_table_key(stage, stalled_from)]


def check_transition(
    from_stage: DealStage, to_stage: DealStage, stalled_from: DealStage | None = None
) -> TransitionCheck:
    """Whether the deal may move from `from_stage` to `to_stage`, and why (for the audit trail).

    `stalled_from` is the state's; it matters only when `from_stage` is `stalled`."""
    accepted = to_stage in allowed_targets(from_stage, stalled_from)
    explain = _accepted_because if accepted else _rejected_because
    return TransitionCheck(
        accepted=accepted,
        reason=f"{from_stage.value} -> {to_stage.value}: "
        f"{explain(from_stage, to_stage, stalled_from)}",
    )


def is_forward(from_stage: DealStage, to_stage: DealStage, stalled_from: DealStage | None) -> bool:
    """Whether an allowed move advances the pipeline, so the target's exit criteria apply.

    Forward: to the next stage (closed_won included), or from `stalled` to the stage right after
    the resume point. Stalling, losing, and resuming to where the deal was (or earlier) are not."""
    if to_stage not in PIPELINE:
        return False
    origin = resume_point(stalled_from) if from_stage is DealStage.STALLED else from_stage
    if origin not in PIPELINE:
        return False
    return PIPELINE.index(to_stage) > PIPELINE.index(origin)


def stalled_from_after(
    from_stage: DealStage, to_stage: DealStage, stalled_from: DealStage | None
) -> DealStage | None:
    """The state's `stalled_from` once it has moved from `from_stage` to `to_stage`.

    Set when a deal stalls (to the open stage it stalled from), kept while it stays stalled,
    cleared when it leaves. A deal set to `stalled` from a closed stage (only a person can do
    that) has no open stage to remember: None, which resumes like a legacy row."""
    if to_stage is not DealStage.STALLED:
        return None
    if from_stage is DealStage.STALLED:
        return stalled_from
    return from_stage if from_stage in OPEN_STAGES else None


def _accepted_because(
    from_stage: DealStage, to_stage: DealStage, stalled_from: DealStage | None
) -> str:
    if from_stage is to_stage:
        return f"stays in {from_stage.value}"
    if to_stage is DealStage.STALLED:
        return "the deal stalls"
    if to_stage is DealStage.CLOSED_LOST:
        return "the deal is lost"
    if from_stage is DealStage.STALLED:
        point = resume_point(stalled_from)
        if to_stage is point:
            return "the deal resumes"
        if is_forward(from_stage, to_stage, stalled_from):
            return f"the deal resumes from {point.value} and advances one step"
        return f"the deal resumes before {point.value}, where it stalled"
    if to_stage is DealStage.CLOSED_WON:
        return "negotiation closes the deal"
    return "the next stage"


def _rejected_because(
    from_stage: DealStage, to_stage: DealStage, stalled_from: DealStage | None
) -> str:
    if from_stage in CLOSED:
        return f"{from_stage.value} is terminal"
    if from_stage is DealStage.STALLED:
        point = resume_point(stalled_from)
        if to_stage is DealStage.CLOSED_WON:
            return f"only negotiation closes a won deal; resume to {point.value} first"
        return f"{_skips(point, to_stage)} ({_stalled_from_text(stalled_from)})"
    if PIPELINE.index(to_stage) < PIPELINE.index(from_stage):
        return "deals do not move backwards"
    return _skips(from_stage, to_stage)


def _stalled_from_text(stalled_from: DealStage | None) -> str:
    if stalled_from is not None and stalled_from in OPEN_STAGES:
        return f"stalled from {stalled_from.value}"
    return f"stalled from an unknown stage, taken as {LEGACY_STALLED_FROM.value}"


def _skips(origin: DealStage, to_stage: DealStage) -> str:
    skipped = PIPELINE[PIPELINE.index(origin) + 1 : PIPELINE.index(to_stage)]
    return "skips " + ", ".join(stage.value for stage in skipped)


# The reason recorded when a turn resumes a deal the inactivity sweeper stalled.
ACTIVITY_RESUMED = "activity resumed"


def resume_on_activity(state: ConversationState) -> tuple[ConversationState, StageChange]:
    """A deal stalled by inactivity, back at the stage it stalled from (prospecting for a row
    without a usable `stalled_from`), and the record of that move."""
    if state.deal_stage is not DealStage.STALLED:
        raise ValueError(f"only a stalled deal resumes, not one in {state.deal_stage.value}")
    point = resume_point(state.stalled_from)
    change = StageChange(
        from_stage=DealStage.STALLED, to_stage=point, accepted=True, reason=ACTIVITY_RESUMED
    )
    return state.model_copy(update={"deal_stage": point, "stalled_from": None}), change


def is_inactive(state: ConversationState, *, now: datetime, days: int) -> bool:
    """An open deal whose latest turn is more than `days` before `now` (the sweeper's rule;
    the same predicate as migration 0006's listing). A deal without turns never is."""
    return (
        state.deal_stage in OPEN_STAGES
        and state.last_interaction is not None
        and state.last_interaction < now - timedelta(days=days)
    )
