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
