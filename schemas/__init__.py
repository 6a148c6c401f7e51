"""Pydantic models of the contract (../shared/CONTRACT.md). No I/O library is imported here."""

from schemas.enums import Channel, DealStage, PersonaType, Speaker
from schemas.events import (
    DEFAULT_MAX_TURN_CHARS,
    UPDATE_EVENT_NAMESPACE,
    ConversationKey,
    ConversationTurn,
    DeadLetter,
    ExtractionInfo,
    QualificationUpdated,
    StageChange,
    conversation_key,
    update_event_id,
)
from schemas.qualification import (
    BANTSignals,
    MEDDICSignals,
    QualificationExtraction,
    QualificationSignals,
    QualificationState,
)
from schemas.state import ConversationState, NextAction

__all__ = [
    "DEFAULT_MAX_TURN_CHARS",
    "UPDATE_EVENT_NAMESPACE",
    "BANTSignals",
    "Channel",
    "ConversationKey",
    "ConversationState",
    "ConversationTurn",
    "DeadLetter",
    "DealStage",
    "ExtractionInfo",
    "MEDDICSignals",
    "NextAction",
    "PersonaType",
    "QualificationExtraction",
    "QualificationSignals",
    "QualificationState",
    "QualificationUpdated",
    "Speaker",
    "StageChange",
    "conversation_key",
    "update_event_id",
]
