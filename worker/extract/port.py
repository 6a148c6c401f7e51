"""What every extractor offers the service: the LLM one (extraction.py) and the rules (rules.py).

No I/O library is imported here, so the service and the rules can depend on it freely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

from schemas import (
    Channel,
    DealStage,
    NextStage,
    QualificationExtraction,
    QualificationState,
    Speaker,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class TurnText:
    """The part of a turn an extractor reads: no email, no ids beyond the event id."""

    event_id: UUID
    speaker: Speaker
    channel: Channel
    text: str
    occurred_at: datetime


@dataclass(frozen=True, kw_only=True)
class ExtractionResult:
    """`extraction` is None when status is `failed`: the caller keeps its state unchanged."""

    status: Literal["ok", "failed"]
    extraction: QualificationExtraction | None
    model: str
    prompt_version: str
    attempts: int = 1
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    evidence_dropped: int = 0
    error: str | None = None  # the error class name when failed; never turn text
    seconds: float = 0.0  # wall time of the call, retries included; set by the service


class Extractor(Protocol):
    model_name: str
    prompt_version: str

    async def extract_signals(
        self,
        turns: Sequence[TurnText],
        existing_state: QualificationState,
        current_stage: DealStage,
        *,
        next_stage: NextStage | None = None,
    ) -> ExtractionResult:
        """One call for all signals in `turns`; never raises for LLM trouble (fail-open).

        `next_stage` is the gap report of the known state: the questions the extractor
        recommends should aim at what it lacks."""
        ...
