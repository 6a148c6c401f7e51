"""Closed vocabularies of the contract (CONTRACT.md sections 1, 2 and 4)."""

from __future__ import annotations

from enum import StrEnum


class DealStage(StrEnum):
    PROSPECTING = "prospecting"
    DISCOVERY = "discovery"
    QUALIFICATION = "qualification"
    EVALUATION = "evaluation"
    NEGOTIATION = "negotiation"
    CLOSED_WON = "closed_won"
    CLOSED_LOST = "closed_lost"
    STALLED = "stalled"


class PersonaType(StrEnum):
    C_SUITE = "c_suite"
    VP = "vp"
    DIRECTOR = "director"
    MANAGER = "manager"
    INDIVIDUAL_CONTRIBUTOR = "individual_contributor"


class Channel(StrEnum):
    EMAIL = "email"
    CHAT = "chat"
    SMS = "sms"
    CALL = "call"
    MEETING = "meeting"
    LINKEDIN = "linkedin"
    OTHER = "other"


class Speaker(StrEnum):
    PROSPECT = "prospect"
    REP = "rep"


class Dimension(StrEnum):
    """The ten qualification dimensions (CONTRACT.md section 2): four BANT, six MEDDIC."""

    BUDGET = "budget"
    AUTHORITY = "authority"
    NEED = "need"
    TIMELINE = "timeline"
    METRICS = "metrics"
    ECONOMIC_BUYER = "economic_buyer"
    DECISION_CRITERIA = "decision_criteria"
    DECISION_PROCESS = "decision_process"
    IDENTIFY_PAIN = "identify_pain"
    CHAMPION = "champion"


OPEN_STAGES = (
    DealStage.PROSPECTING,
    DealStage.DISCOVERY,
    DealStage.QUALIFICATION,
    DealStage.EVALUATION,
    DealStage.NEGOTIATION,
)
CLOSED_STAGES = (DealStage.CLOSED_WON, DealStage.CLOSED_LOST)
