"""The LLM adapter's prompt budget counts tokens only when a batch might not fit."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas import DealStage, QualificationState
from tests.builders import turn_text
from worker.extract.llm import QualificationExtractor

LARGE_CONTEXT_MODEL = "anthropic/claude-sonnet-4-5"  # 200k tokens in LiteLLM's list


@dataclass(kw_only=True)
class CountingExtractor(QualificationExtractor):
    """The real extractor, remembering what it sent to the tokenizer."""

    counted: list[str] = field(default_factory=list)

    def count_tokens(self, text: str) -> int:
        self.counted.append(text)
        return super().count_tokens(text)

    def fixed_prompt_tokens(self) -> int:
        self.counted.append("<fixed part>")
        return super().fixed_prompt_tokens()


def plan(extractor: QualificationExtractor, texts: list[str]) -> list[list[str]]:
    turns = [turn_text(text, n) for n, text in enumerate(texts)]
    chunks = extractor.plan_chunks(turns, QualificationState(), DealStage.DISCOVERY)
    return [[t.text for t in chunk] for chunk in chunks]


def test_short_turns_for_a_large_context_are_planned_without_the_tokenizer() -> None:
    extractor = CountingExtractor(model_name=LARGE_CONTEXT_MODEL)
    texts = ["We have a budget of $50k.", "We need it live by Q3."]

    assert plan(extractor, texts) == [texts]
    assert extractor.counted == []


def test_a_batch_the_upper_bound_does_not_clear_is_counted_and_planned_as_before() -> None:
    extractor = CountingExtractor(model_name=LARGE_CONTEXT_MODEL, max_prompt_tokens=6_000)
    texts = ["A sentence about the budget and the timeline. " * 20 for _ in range(12)]

    chunks = plan(extractor, texts)

    assert extractor.counted  # the tokenizer decided
    assert len(chunks) > 1 and [text for chunk in chunks for text in chunk] == texts


def test_short_turns_for_a_small_context_count_the_fixed_part_and_no_frame() -> None:
    """The fixed part's count is cached per model (functools.cache): no per-call counting."""
    extractor = CountingExtractor(model_name=LARGE_CONTEXT_MODEL, max_prompt_tokens=6_000)
    texts = ["We have a budget of $50k.", "We need it live by Q3."]

    assert plan(extractor, texts) == [texts]
    assert plan(extractor, texts) == [texts]
    assert set(extractor.counted) == {"<fixed part>"}


def test_each_estimate_leaves_no_more_room_than_the_next() -> None:
    extractor = QualificationExtractor(model_name=LARGE_CONTEXT_MODEL, max_prompt_tokens=60_000)
    state, stage = QualificationState(key_insights=["Inbound volume doubled"]), DealStage.DISCOVERY

    rooms = [extractor.turn_budget(state, stage, counted=c) for c in ("none", "fixed", "all")]

    assert rooms == sorted(rooms)
