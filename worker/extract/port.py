"""What every extractor offers the service: the LLM one (llm.py) and the rules (rules.py).

No I/O library is imported here, so the service and the rules can depend on it freely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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

# ExtractionResult.error when the prompt did not fit the model's context window: the caller
# plans the turns again for a smaller budget rather than send the same prompt again.
CONTEXT_WINDOW_EXCEEDED = "ContextWindowExceeded"


@dataclass(frozen=True, kw_only=True, slots=True)
class TurnText:
    """The part of a turn an extractor reads: no email, no ids beyond the event id."""

    event_id: UUID
    speaker: Speaker
    channel: Channel
    text: str
    occurred_at: datetime
    # Contact data already taken out (redaction.redact_turn): not redacted again. A turn is
    # seen up to three times per extraction (to plan, to extract, in the prompt), and the
    # phone matcher is slow pure Python.
    redacted: bool = False


@dataclass(frozen=True, kw_only=True)
class ExtractionResult:
    """`extraction` is None when status is `failed`: the caller keeps its state unchanged."""

    status: Literal["ok", "failed"]
    extraction: QualificationExtraction | None
    model: str
    prompt_version: str
    attempts: int = 1
    prompt_tokens: int = 0  # all input tokens, the cached ones included
    completion_tokens: int = 0
    cache_read_tokens: int = 0  # input tokens read from the provider's prompt cache
    cache_write_tokens: int = 0  # input tokens written to it (Anthropic bills them extra)
    cost_usd: float | None = None  # None: the model's price is unknown (never 0 for unknown)
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

    def plan_chunks(
        self,
        turns: Sequence[TurnText],
        existing_state: QualificationState,
        current_stage: DealStage,
        *,
        next_stage: NextStage | None = None,
        shrink: int = 1,
    ) -> list[list[TurnText]]:
        """`turns` (oldest first) as consecutive chunks whose prompts fit the model: one
        extraction (and one state version) each. A turn too long for any prompt comes back
        trimmed, with a marker saying so. `shrink`: plan for 1/shrink of the budget (after
        a `ContextWindowExceeded` failure, plan again with 2)."""
        ...


@dataclass(kw_only=True)
class ExtractorDecorator:
    """An Extractor around `inner`: it sees the turns as `prepare` makes them and is otherwise
    `inner` (its model, prompt version and chunk plan). Subclasses override `prepare` or
    `extract_signals` (redaction of contact data, counting in the evaluation)."""

    inner: Extractor
    model_name: str = field(init=False)
    prompt_version: str = field(init=False)

    def __post_init__(self) -> None:
        self.model_name = self.inner.model_name
        self.prompt_version = self.inner.prompt_version

    def prepare(self, turns: Sequence[TurnText]) -> Sequence[TurnText]:
        return turns

    def plan_chunks(
        self,
        turns: Sequence[TurnText],
        existing_state: QualificationState,
        current_stage: DealStage,
        *,
        next_stage: NextStage | None = None,
        shrink: int = 1,
    ) -> list[list[TurnText]]:
        return self.inner.plan_chunks(
            self.prepare(turns), existing_state, current_stage, next_stage=next_stage, shrink=shrink
        )

    async def extract_signals(
        self,
        turns: Sequence[TurnText],
        existing_state: QualificationState,
        current_stage: DealStage,
        *,
        next_stage: NextStage | None = None,
    ) -> ExtractionResult:
        return await self.inner.extract_signals(
            self.prepare(turns), existing_state, current_stage, next_stage=next_stage
        )
