"""The extractor call of a unit of work: the turns planned in prompts that fit the model, then
each prompt extracted with no connection held, timed, counted and traced."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from schemas import ConversationState, ConversationTurn, NextStage
from worker.extract.port import ExtractionResult, Extractor, TurnText
from worker.ops import metrics, tracing
from worker.qualify.criteria import StageCriteria
from worker.qualify.versioning import gap_report


def as_turn_text(turn: ConversationTurn) -> TurnText:
    return TurnText(
        event_id=turn.event_id,
        speaker=turn.speaker,
        channel=turn.channel,
        text=turn.text,
        occurred_at=turn.occurred_at,
    )


@dataclass(frozen=True)
class Known:
    """What an extraction is shown of its conversation: the state, and what the next stage
    still lacks (so the model's questions aim at the gaps), reported once per state."""

    state: ConversationState
    next_stage: NextStage | None


@dataclass(frozen=True, kw_only=True)
class Extraction:
    extractor: Extractor
    criteria: StageCriteria

    def known(self, state: ConversationState) -> Known:
        return Known(state, gap_report(state, self.criteria))

    def plan(self, turns: list[TurnText], known: Known, *, shrink: int) -> list[list[TurnText]]:
        """Oldest first, in prompts that fit the model: one extraction (one version) each."""
        state = known.state
        return self.extractor.plan_chunks(
            turns, state.qualification, state.deal_stage, next_stage=known.next_stage, shrink=shrink
        )

    async def extract(self, turns: list[TurnText], known: Known) -> ExtractionResult:
        """The one extractor call, with no connection held: timed, counted and traced. The
        extractor sees what is known and what the next stage still lacks."""
        state = known.state
        with tracing.span("extraction", turns=len(turns)) as span:
            started = time.perf_counter()
            result = await self.extractor.extract_signals(
                turns, state.qualification, state.deal_stage, next_stage=known.next_stage
            )
            result = replace(result, seconds=time.perf_counter() - started)
            span.set_attribute("llm.model", result.model)
            span.set_attribute("extraction.status", result.status)
            span.set_attribute("llm.prompt_tokens", result.prompt_tokens)
            span.set_attribute("llm.completion_tokens", result.completion_tokens)
        metrics.observe_extraction(result, result.seconds)
        return result
