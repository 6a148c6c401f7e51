"""How operator commands show conversations to people."""

from __future__ import annotations

from uuid import UUID

from schemas import ConversationState


def render_pipeline(tenant_id: UUID, states: list[ConversationState]) -> str:
    header = f"{'ACCOUNT':<24} {'CONTACT':<22} {'STAGE':<13} {'CONF':>4} {'TURNS':>5}  BANT  MEDDIC"
    lines = [f"tenant {tenant_id}: {len(states)} conversation(s)", header, "-" * len(header)]
    for s in states:
        lines.append(
            f"{s.account_id[:24]:<24} {s.contact_id[:22]:<22} {s.deal_stage.value:<13} "
            f"{s.confidence_score:>4.2f} {s.interaction_count:>5}  "
            f"{bant_flags(s)}  {meddic_flags(s)}"
        )
    return "\n".join(lines)


def bant_flags(state: ConversationState) -> str:
    """'BA·T': the letter of each identified dimension, a dot for the others."""
    b = state.qualification.bant
    found = (b.budget_identified, b.authority_identified, b.need_identified, b.timeline_identified)
    return "".join(letter if hit else "·" for letter, hit in zip("BANT", found, strict=True))


def meddic_flags(state: ConversationState) -> str:
    m = state.qualification.meddic
    found = (
        m.metrics_identified,
        m.economic_buyer_identified,
        bool(m.decision_criteria),
        m.decision_process_identified,
        m.identify_pain_identified,
        m.champion_identified,
    )
    return "".join(letter if hit else "·" for letter, hit in zip("MEDDIC", found, strict=True))
