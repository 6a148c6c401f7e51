"""How operator commands show conversations to people."""

from __future__ import annotations

from uuid import UUID

from schemas import ConversationState, is_identified
from schemas.dimensions import DIMENSIONS, DimensionSpec, Group
from worker.qualify.criteria import DEFAULT_CRITERIA, StageCriteria
from worker.qualify.versioning import gap_report

BANT = DIMENSIONS.in_group(Group.BANT)
# MEDDIC's six, then MEDDPICC's paper process and competition (the table's order).
MEDDIC = DIMENSIONS.in_group(Group.MEDDIC)
BANT_LETTERS = "".join(row.letter for row in BANT)
MEDDIC_LETTERS = "".join(row.letter for row in MEDDIC)
PIPELINE_LEGEND = (
    f"{BANT_LETTERS}/{MEDDIC_LETTERS}: a letter per identified dimension, · where not; "
    "* after it: owned by a person (extractions only suggest)"
)


def render_pipeline(
    tenant_id: UUID, states: list[ConversationState], criteria: StageCriteria = DEFAULT_CRITERIA
) -> str:
    header = (
        f"{'ACCOUNT':<24} {'CONTACT':<22} {'STAGE':<13} {'CONF':>4} {'TURNS':>5}  "
        f"{BANT_LETTERS:<8}  {MEDDIC_LETTERS:<16}  NEXT STAGE: MISSING"
    )
    lines = [f"tenant {tenant_id}: {len(states)} conversation(s)", header, "-" * len(header)]
    for s in states:
        lines.append(
            f"{s.account_id[:24]:<24} {s.contact_id[:22]:<22} {s.deal_stage.value:<13} "
            f"{s.confidence_score:>4.2f} {s.interaction_count:>5}  "
            f"{bant_flags(s):<8}  {meddic_flags(s):<16}  {next_stage_gaps(s, criteria)}".rstrip()
        )
    if any(s.owners for s in states):
        lines.append(PIPELINE_LEGEND)
    return "\n".join(lines)


def next_stage_gaps(state: ConversationState, criteria: StageCriteria) -> str:
    """'evaluation: budget, timeline' — the next stage and what its exit criteria still lack."""
    gaps = gap_report(state, criteria)
    if gaps is None:
        return "-"  # a closed deal: no next stage
    return f"{gaps.stage.value}: {', '.join(d.value for d in gaps.missing) or 'nothing missing'}"


def bant_flags(state: ConversationState) -> str:
    """'BA*·T': the letter of each identified dimension, a dot for the others; `*` after the
    dimensions a person owns."""
    return _flags(state, BANT)


def meddic_flags(state: ConversationState) -> str:
    return _flags(state, MEDDIC)


def _flags(state: ConversationState, dimensions: tuple[DimensionSpec, ...]) -> str:
    return "".join(
        (row.letter if is_identified(state.qualification, row.name) else "·")
        + ("*" if row.name in state.owners else "")
        for row in dimensions
    )


def render_state(found: ConversationState) -> str:
    """The whole state as JSON: owners (who owns which dimension since when) and suggestions
    (the AI's differing views of owned dimensions) included."""
    return found.model_dump_json(indent=2)
