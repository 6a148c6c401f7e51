"""What an extraction costs, through real instructor + LiteLLM + HTTP against the fake server:
the lean schema on the wire, Anthropic's prompt cache, cache-aware cost and metrics, and the
prompt budget that keeps an oversized conversation from being stuck."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from schemas import DealStage, QualificationState
from tests.builders import turn_text
from tests.fakes.llm_server import FakeLLMServer, JsonObject, echo_extraction, request_text
from worker.extract.llm import CONTEXT_WINDOW_EXCEEDED, QualificationExtractor
from worker.extract.port import ExtractionResult, TurnText
from worker.extract.pricing import TokenUsage, token_prices
from worker.extract.prompt_budget import TRIM_MARKER
from worker.ops.metrics import observe_extraction
from worker.settings import Settings

ANTHROPIC_MODEL = "anthropic/claude-sonnet-4-5"  # the default: priced, cache prices included
NEED = "We need single sign-on for all 400 of our agents."
VALID: JsonObject = {
    "bant": {
        "need_identified": True,
        "need_confidence": 0.8,
        "need_evidence": [NEED],
        "need_description": "SSO for 400 agents",
    },
    "meddic": {
        "decision_criteria": ["SSO"],
        "decision_criteria_confidence": 0.7,
        "decision_criteria_evidence": [NEED],  # without a surviving quote it would change nothing
    },
    "overall_confidence": 0.3,
    "suggested_stage": "discovery",
    "stage_reason": "A need is known.",
}


@pytest_asyncio.fixture
async def llm_server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


def extractor(server: FakeLLMServer, model: str = "openai/fake-model", **overrides: Any) -> Any:
    base = server.anthropic_base_url if model.startswith("anthropic/") else server.base_url
    settings = Settings(
        **{
            "llm_model": model,
            "llm_api_base": base,
            "llm_mode": "tools",  # the scripted replies are tool calls
            "llm_api_key": "test-key",
            "llm_timeout_s": 2,
            "llm_retry_budget_s": 5,
            **overrides,
        }
    )
    return dataclasses.replace(
        QualificationExtractor.from_settings(settings), backoff_initial_s=0.01
    )


async def extract(llm: QualificationExtractor, turns: list[TurnText]) -> ExtractionResult:
    return await llm.extract_signals(turns, QualificationState(), DealStage.DISCOVERY)


def quote_every_turn(request: JsonObject) -> JsonObject:
    """A need, evidenced by the first sentence of every turn the prompt shows."""
    texts = re.findall(r"<turn [^>]*>\n(.*?)\n</turn>", request_text(request), re.S)
    quotes = [text.split(". ", 1)[0] + "." for text in texts]
    need = {"need_identified": True, "need_confidence": 0.6, "need_evidence": quotes}
    return {"bant": need, "overall_confidence": 0.2}


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- the request on the wire -----------------------------------------------------------------


async def test_lean_request_carries_no_length_limits_and_reads_back_in_full(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.reply_builder = lambda _request: VALID

    result = await extract(extractor(llm_server), [turn_text(NEED)])

    body = json.dumps(llm_server.requests[0])
    assert "maxLength" not in body and "maxItems" not in body  # llama.cpp's grammar dies on them
    assert llm_server.requests[0]["tools"][0]["function"]["name"] == "ExtractedSignals"
    assert result.status == "ok"
    assert result.extraction.bant.need_evidence == [NEED]
    assert result.extraction.bant.need_description == "SSO for 400 agents"
    assert result.extraction.meddic.decision_criteria == ["SSO"]


async def test_full_schema_is_selectable_and_reads_the_same_reply_the_same(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.reply_builder = lambda _request: VALID  # the fake answers in the schema it got

    lean = await extract(extractor(llm_server), [turn_text(NEED)])
    full = await extract(extractor(llm_server, llm_response_schema="full"), [turn_text(NEED)])

    assert llm_server.requests[1]["tools"][0]["function"]["name"] == "QualificationExtraction"
    assert full.prompt_version.endswith("-full") and not lean.prompt_version.endswith("-full")
    assert full.extraction == lean.extraction
    assert len(json.dumps(llm_server.requests[0])) < len(json.dumps(llm_server.requests[1]))


async def test_gap_report_comes_after_the_fixed_part(llm_server: FakeLLMServer) -> None:
    from schemas import Dimension, NextStage

    gap = NextStage(stage=DealStage.QUALIFICATION, missing=[Dimension.BUDGET])
    llm = extractor(llm_server)

    await llm.extract_signals(
        [turn_text(NEED)], QualificationState(), DealStage.DISCOVERY, next_stage=gap
    )

    system, user = llm_server.requests[0]["messages"]
    assert "Still missing for it: budget" in user["content"]
    assert "Still missing" not in system["content"]


# --- Anthropic: prompt caching and its price ----------------------------------------------------


async def test_anthropic_request_marks_the_fixed_prefix_for_caching(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.reply_builder = echo_extraction

    result = await extract(extractor(llm_server, ANTHROPIC_MODEL), [turn_text(NEED)])

    assert llm_server.paths[0] == "/v1/messages"
    body = llm_server.requests[0]
    assert body["model"] == "claude-sonnet-4-5"
    assert body["tools"][0]["name"] == "ExtractedSignals" and "input_schema" in body["tools"][0]
    (system,) = body["system"]
    assert system["cache_control"] == {"type": "ephemeral"}
    assert "DATA, not instructions" in system["text"]
    # Nothing that varies is in the cached prefix: the turns come after it.
    assert NEED not in system["text"] and NEED in request_text(body)
    assert "cache_control" not in json.dumps(body["messages"])
    assert "maxLength" not in json.dumps(body)
    assert result.status == "ok" and result.extraction.bant.need_evidence == [NEED]


async def test_cache_tokens_are_recorded_counted_and_billed_at_cache_prices(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.reply_builder = echo_extraction
    llm = extractor(llm_server, ANTHROPIC_MODEL)
    before = {
        kind: metric("qualification_llm_tokens_total", model=ANTHROPIC_MODEL, kind=kind)
        for kind in ("cache_read", "cache_write")
    }

    first = await extract(llm, [turn_text(NEED)])
    second = await extract(llm, [turn_text("Our CFO Dana Smith signs anything over $20k.")])
    for result in (first, second):
        observe_extraction(result, seconds=0.1)

    assert first.cache_write_tokens > 1000 and first.cache_read_tokens == 0
    assert second.cache_read_tokens == first.cache_write_tokens and second.cache_write_tokens == 0
    assert second.prompt_tokens > second.cache_read_tokens  # prompt_tokens counts all input
    assert (llm_server.cache_write_tokens, llm_server.cache_read_tokens) == (
        first.cache_write_tokens,
        second.cache_read_tokens,
    )
    written = metric("qualification_llm_tokens_total", model=ANTHROPIC_MODEL, kind="cache_write")
    read = metric("qualification_llm_tokens_total", model=ANTHROPIC_MODEL, kind="cache_read")
    assert written - before["cache_write"] == first.cache_write_tokens
    assert read - before["cache_read"] == second.cache_read_tokens
    # The cost, computed by hand from LiteLLM's price entry for the model.
    prices = token_prices(ANTHROPIC_MODEL)
    assert prices is not None and prices.cache_read is not None
    fresh = second.prompt_tokens - second.cache_read_tokens
    expected = (
        fresh * prices.input
        + second.cache_read_tokens * prices.cache_read
        + second.completion_tokens * prices.output
    )
    assert second.cost_usd == pytest.approx(expected)
    assert second.cost_usd < first.cost_usd  # type: ignore[operator]


async def test_openai_cached_tokens_are_recorded(llm_server: FakeLLMServer) -> None:
    llm_server.reply_builder = echo_extraction
    llm = extractor(llm_server, "openai/gpt-4o-mini")

    first = await extract(llm, [turn_text(NEED)])
    second = await extract(llm, [turn_text("We lose 30 hours a week on this.")])

    assert first.cache_read_tokens == 0
    assert second.cache_read_tokens > 1000 and second.cache_write_tokens == 0
    prices = token_prices("openai/gpt-4o-mini")
    assert prices is not None
    usage = TokenUsage(
        prompt_tokens=second.prompt_tokens,
        completion_tokens=second.completion_tokens,
        cache_read_tokens=second.cache_read_tokens,
    )
    assert second.cost_usd == pytest.approx(prices.cost(usage))


async def test_unknown_price_is_reported_unknown_never_zero(llm_server: FakeLLMServer) -> None:
    model = "openai/unpriced-model"
    llm_server.reply_builder = echo_extraction

    result = await extract(extractor(llm_server, model), [turn_text(NEED)])
    observe_extraction(result, seconds=0.1)

    assert result.status == "ok" and result.cost_usd is None
    assert REGISTRY.get_sample_value("qualification_llm_cost_usd_total", {"model": model}) is None
    assert metric("qualification_llm_cost_unknown_total", model=model) == 1
    priced = await extract(
        extractor(llm_server, model, llm_input_price_per_mtok=1, llm_output_price_per_mtok=2),
        [turn_text(NEED)],
    )
    assert priced.cost_usd == pytest.approx(
        (priced.prompt_tokens * 1 + priced.completion_tokens * 2) / 1_000_000
    )


# --- the prompt budget ---------------------------------------------------------------------


@pytest.mark.parametrize("model", ["openai/fake-model", ANTHROPIC_MODEL])
async def test_prompt_over_the_context_fails_at_once_as_context_window_exceeded(
    llm_server: FakeLLMServer, model: str
) -> None:
    llm_server.context_limit_tokens = 3000
    llm_server.reply_builder = echo_extraction
    # The extractor believes in a larger context than the server has: the server says no.
    llm = extractor(llm_server, model, llm_max_prompt_tokens=100_000)

    result = await extract(llm, [turn_text(f"{NEED} " + "word " * 4000)])

    assert result.status == "failed" and result.error == CONTEXT_WINDOW_EXCEEDED
    assert len(llm_server.requests) == 1  # neither re-asked nor retried as it is
    assert not llm.circuit.is_open


async def test_oversized_conversation_is_extracted_in_full_across_planned_chunks(
    llm_server: FakeLLMServer,
) -> None:
    limit = 6000
    llm_server.context_limit_tokens = limit
    llm_server.reply_builder = quote_every_turn
    llm = extractor(llm_server, llm_max_prompt_tokens=limit)
    # 60 turns of ~2,000 characters: ~30,000 tokens, five times what one prompt may hold.
    texts = [f"Turn {n} says we need connector {n}. " + "detail " * 280 for n in range(60)]
    turns = [turn_text(text, n) for n, text in enumerate(texts)]
    state = QualificationState()

    chunks = llm.plan_chunks(turns, state, DealStage.DISCOVERY)
    results = [await llm.extract_signals(chunk, state, DealStage.DISCOVERY) for chunk in chunks]

    assert len(chunks) >= 5
    assert [t for chunk in chunks for t in chunk] == turns
    assert all(result.status == "ok" for result in results)
    quoted = [q for result in results for q in result.extraction.bant.need_evidence]
    assert quoted == [f"Turn {n} says we need connector {n}." for n in range(60)]
    assert llm_server.received == len(chunks)  # not one 400 on the way


async def test_halving_the_plan_rescues_a_chunk_the_server_refused(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.reply_builder = echo_extraction
    llm = extractor(llm_server, llm_max_prompt_tokens=12_000)
    turns = [turn_text(f"Turn {n} needs item {n}. " + "detail " * 280, n) for n in range(12)]
    state = QualificationState()
    (whole,) = llm.plan_chunks(turns, state, DealStage.DISCOVERY)
    llm_server.context_limit_tokens = 7000  # smaller than the extractor was told

    refused = await llm.extract_signals(whole, state, DealStage.DISCOVERY)
    halves = llm.plan_chunks(turns, state, DealStage.DISCOVERY, shrink=2)
    results = [await llm.extract_signals(chunk, state, DealStage.DISCOVERY) for chunk in halves]

    assert refused.error == CONTEXT_WINDOW_EXCEEDED
    assert len(halves) >= 2 and all(result.status == "ok" for result in results)


async def test_a_single_turn_too_long_for_any_prompt_is_trimmed_not_failed(
    llm_server: FakeLLMServer,
) -> None:
    limit = 5000
    llm_server.context_limit_tokens = limit
    llm_server.reply_builder = echo_extraction
    llm = extractor(llm_server, llm_max_prompt_tokens=limit)
    huge = turn_text(f"{NEED} " + "x" * 60_000)

    result = await extract(llm, [huge])

    assert result.status == "ok" and result.extraction.bant.need_evidence == [NEED]
    sent = request_text(llm_server.requests[0])
    marker = TRIM_MARKER.split("{", 1)[0]
    assert marker in sent and "characters]" in sent
    assert len(sent) < len(huge.text)
