"""The deal-stage machine (CONTRACT.md section 4).

prospecting -> discovery -> qualification -> evaluation -> negotiation -> closed_won | closed_lost;
any open stage -> stalled; stalled -> any open stage; closed stages are terminal; staying put is
always allowed; no skipping.

Read literally, only negotiation closes a deal: `discovery -> closed_lost` skips stages and is
rejected, and a stalled deal resumes an open stage before it can close. "Open" means not closed,
so stalled resumes to any of prospecting .. negotiation. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from schemas import DealStage

# The pipeline, in order; each stage may only move to the next one.
PIPELINE: tuple[DealStage, ...] = (
    DealStage.PROSPECTING,
    DealStage.DISCOVERY,
    DealStage.QUALIFICATION,
    DealStage.EVALUATION,
    DealStage.NEGOTIATION,
)
CLOSED: frozenset[DealStage] = frozenset({DealStage.CLOSED_WON, DealStage.CLOSED_LOST})


@dataclass(frozen=True, kw_only=True)
class TransitionCheck:
    accepted: bool
    reason: str


def _targets(stage: DealStage) -> frozenset[DealStage]:
    """Where `stage` may go, itself included."""
    if stage in CLOSED:
        return frozenset({stage})
    if stage is DealStage.STALLED:
        return frozenset({stage, *PIPELINE})
    position = PIPELINE.index(stage)
    forward = PIPELINE[position + 1 : position + 2] or tuple(CLOSED)
    return frozenset({stage, *forward, DealStage.STALLED})


VALID_TRANSITIONS: Mapping[DealStage, frozenset[DealStage]] = MappingProxyType(
    {stage: _targets(stage) for stage in DealStage}
)


def check_transition(from_stage: DealStage, to_stage: DealStage) -> TransitionCheck:
    """Whether the deal may move from `from_stage` to `to_stage`, and why (for the audit trail)."""
    accepted = to_stage in VALID_TRANSITIONS[from_stage]
    explain = _accepted_because if accepted else _rejected_because
    return TransitionCheck(
        accepted=accepted,
        reason=f"{from_stage.value} -> {to_stage.value}: {explain(from_stage, to_stage)}",
    )


def _accepted_because(from_stage: DealStage, to_stage: DealStage) -> str:
    if from_stage is to_stage:
        return f"stays in {from_stage.value}"
    if to_stage is DealStage.STALLED:
        return "the deal stalls"
    if from_stage is DealStage.STALLED:
        return "the deal resumes"
    if to_stage in CLOSED:
        return "negotiation closes the deal"
    return "the next stage"


def _rejected_because(from_stage: DealStage, to_stage: DealStage) -> str:
    if from_stage in CLOSED:
        return f"{from_stage.value} is terminal"
    if from_stage is DealStage.STALLED:
        # Only reachable for a closed target: stalled resumes to any open stage.
        return "only negotiation closes a deal; a stalled deal resumes an open stage first"
    if _rank(to_stage) < _rank(from_stage):
        return "deals do not move backwards"
    skipped = PIPELINE[_rank(from_stage) + 1 : _rank(to_stage)]
    return "skips " + ", ".join(stage.value for stage in skipped)


def _rank(stage: DealStage) -> int:
    """Position in the pipeline; both closed stages come right after negotiation."""
    return len(PIPELINE) if stage in CLOSED else PIPELINE.index(stage)
