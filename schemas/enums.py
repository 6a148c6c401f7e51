"""Closed vocabularies of the contract (CONTRACT.md sections 1, 2 and 4)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from schemas.dimensions import DIMENSIONS, DimensionTable, Group


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


def dimension_enum(table: DimensionTable) -> type[StrEnum]:
    """The closed vocabulary of `table`'s dimension names, in its order."""
    members = {name.upper(): name for name in table.names}
    enum = StrEnum("Dimension", members)  # type: ignore[misc]  # members come from the table
    enum.__doc__ = (
        f"The {len(table)} qualification dimensions (CONTRACT.md section 2): "
        f"{len(table.in_group(Group.BANT))} BANT, {len(table.in_group(Group.MEDDIC))} MEDDIC."
    )
    return enum


if TYPE_CHECKING:

    class Dimension(StrEnum):
        """Its members are the names of `schemas.dimensions.DIMENSIONS`."""

else:
    Dimension = dimension_enum(DIMENSIONS)


OPEN_STAGES = (
    DealStage.PROSPECTING,
    DealStage.DISCOVERY,
    DealStage.QUALIFICATION,
    DealStage.EVALUATION,
    DealStage.NEGOTIATION,
)
CLOSED_STAGES = (DealStage.CLOSED_WON, DealStage.CLOSED_LOST)
