"""The LLM extractor through real instructor + LiteLLM + HTTP, against the fake server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from structlog.testing import capture_logs
from tenacity import AsyncRetrying, RetryCallState

from schemas import (
    BANTSignals,
    DealStage,
    QualificationExtraction,
    QualificationState,
    Speaker,
)
from tests.builders import turn_texts
from tests.fakes.llm_server import (
    ContentReply,
    ErrorReply,
    FakeLLMServer,
    JsonObject,
    ToolCallReply,
    Usage,
    lean_arguments,
    subprocess_server,
)
from worker.extract.factory import build_extractor
from worker.extract.lean import DimensionSignal, ExtractedSignals, WalkStep
from worker.extract.llm import QualificationExtractor
from worker.extract.pricing import TokenUsage, cost_usd
from worker.extract.prompt import PROMPT_VERSION
from worker.extract.redaction import RedactingExtractor
from worker.extract.rules import RulesExtractor
from worker.settings import Settings

# Small, deterministic settings: the budget is the number the failure tests are held to.
TIMEOUT_S = 0.5
BUDGET_S = 3.0
MAX_RETRIES = 2
TRANSPORT_ATTEMPTS = 3

BUDGET_QUOTE = "We have a budget of around $50K for this, approved by our CFO."
TURN_TEXTS = (
    (Speaker.PROSPECT, "Our team is struggling with manual lead routing."),
    (Speaker.PROSPECT, BUDGET_QUOTE),
    (Speaker.REP, "Great, what timeline are you working towards?"),
    (Speaker.PROSPECT, "We want this live by   the end of Q3."),
)

VALID: JsonObject = {
    "bant": {
        "budget_identified": True,
        "budget_confidence": 0.85,
        "budget_evidence": [BUDGET_QUOTE],
        "budget_range": "$50k",
    },
    "meddic": {"identify_pain_identified": True, "identify_pain_confidence": 0.6},
    "overall_confidence": 0.4,
    "suggested_stage": "qualification",
    "stage_reason": "Budget and need are known.",
}


def known_state() -> QualificationState:
    need = BANTSignals(
        need_identified=True,
        need_confidence=0.7,
        need_evidence=["We need to route leads faster."],
        need_description="Faster lead routing",
    )
    return QualificationState(bant=need, key_insights=["Inbound volume doubled"])


@pytest_asyncio.fixture
async def llm_server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


def llm_settings(server: FakeLLMServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "llm_model": "openai/fake-model",
        "llm_api_base": server.base_url,
        "llm_mode": "tools",  # the scripted replies are tool calls
        "llm_api_key": "test-key",
        "llm_timeout_s": TIMEOUT_S,
        "llm_max_retries": MAX_RETRIES,
        "llm_transport_attempts": TRANSPORT_ATTEMPTS,
        "llm_retry_budget_s": BUDGET_S,
        **overrides,
    }
    return Settings(**values)


def extractor_for(server: FakeLLMServer, **overrides: Any) -> QualificationExtractor:
    extractor = QualificationExtractor.from_settings(llm_settings(server, **overrides))
    return dataclasses.replace(extractor, backoff_initial_s=0.05)  # keep the tests quick


async def extract(
    extractor: QualificationExtractor, state: QualificationState | None = None
) -> Any:
    return await extractor.extract_signals(
        turn_texts(TURN_TEXTS), state or known_state(), DealStage.DISCOVERY
    )


def schema_properties(request: JsonObject) -> set[str]:
    parameters = request["tools"][0]["function"]["parameters"]
    names = set(parameters["properties"])
    for definition in parameters.get("$defs", {}).values():
        names |= set(definition.get("properties", {}))
    return names


def user_message(request: JsonObject) -> str:
    content: str = next(m["content"] for m in request["messages"] if m["role"] == "user")
    return content


# --- the happy path ------------------------------------------------------------------------


async def test_tool_call_reply_becomes_a_validated_extraction(llm_server: FakeLLMServer) -> None:
    llm_server.script(
        ToolCallReply(arguments=VALID, usage=Usage(prompt_tokens=1234, completion_tokens=56))
    )

    result = await extract(extractor_for(llm_server))

    assert result.status == "ok"
    assert type(result.extraction) is QualificationExtraction  # not instructor's wrapper class
    assert result.extraction.bant.budget_identified
    assert result.extraction.bant.budget_evidence == [BUDGET_QUOTE]
    assert result.extraction.suggested_stage is DealStage.QUALIFICATION
    assert (result.model, result.prompt_version) == ("openai/fake-model", PROMPT_VERSION)
    assert (result.prompt_tokens, result.completion_tokens, result.attempts) == (1234, 56, 1)
    assert result.cost_usd is None  # LiteLLM has no price for a fake model


async def test_one_request_carries_every_signal_the_state_summary_and_the_turns(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.script(ToolCallReply(arguments=VALID))

    await extract(extractor_for(llm_server))

    assert len(llm_server.requests) == 1
    request = llm_server.requests[0]
    properties = schema_properties(request)
    sent = set(DimensionSignal.model_fields) | set(ExtractedSignals.model_fields)
    assert sent | set(WalkStep.model_fields) == properties
    assert request["tools"][0]["function"]["name"] == "ExtractedSignals"
    assert request["tool_choice"]["function"]["name"] == "ExtractedSignals"
    assert request["model"] == "fake-model"
    assert request["max_tokens"] == Settings().llm_max_tokens
    user = user_message(request)
    assert "need: confidence 0.70" in user and '"Inbound volume doubled"' in user
    assert all(text in user for _, text in TURN_TEXTS)
    assert user.count("<turn index=") == len(TURN_TEXTS)
    assert 'speaker="rep" channel="chat"' in user
    print(f"\nrequest body chars: {len(json.dumps(request))}")


async def test_json_mode_reads_the_extraction_from_message_content(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.script(ContentReply(content=json.dumps(lean_arguments(VALID))))

    result = await extract(extractor_for(llm_server, llm_mode="json"))

    assert result.status == "ok"
    assert result.extraction.bant.budget_range == "$50k"
    assert "tools" not in llm_server.requests[0]


async def test_default_reply_built_from_the_request(llm_server: FakeLLMServer) -> None:
    seen: list[str] = []

    def builder(request: JsonObject) -> JsonObject:
        seen.append(user_message(request))
        return VALID

    llm_server.reply_builder = builder

    result = await extract(extractor_for(llm_server))

    assert result.status == "ok" and result.extraction.bant.budget_identified
    assert BUDGET_QUOTE in seen[0]


async def test_no_turns_means_no_call(llm_server: FakeLLMServer) -> None:
    extractor = extractor_for(llm_server)

    result = await extractor.extract_signals([], known_state(), DealStage.DISCOVERY)

    assert result.status == "ok" and result.attempts == 0
    assert llm_server.received == 0


# --- re-asks on invalid output ---------------------------------------------------------------


async def test_malformed_then_valid_output_is_one_reask(llm_server: FakeLLMServer) -> None:
    llm_server.script(ToolCallReply(arguments='{"bant": {"budget_identified": tru'))
    llm_server.script(ToolCallReply(arguments=VALID))

    result = await extract(extractor_for(llm_server))

    assert result.status == "ok" and result.attempts == 2
    assert len(llm_server.requests) == 2
    reask = llm_server.requests[1]["messages"]
    assert len(reask) > len(llm_server.requests[0]["messages"])  # the error went back


@pytest.mark.parametrize(
    "invalid",
    [
        {"bant": {"budget_identified": True, "budget_confidence": 1.7}},
        {"overall_confidence": -0.2},
        {"suggested_stage": "won_big"},
    ],
    ids=["confidence_above_1", "confidence_below_0", "unknown_stage"],
)
async def test_invalid_values_are_reasked_not_a_crash(
    llm_server: FakeLLMServer, invalid: JsonObject
) -> None:
    llm_server.script(ToolCallReply(arguments=invalid), ToolCallReply(arguments=VALID))

    result = await extract(extractor_for(llm_server))

    assert result.status == "ok" and result.extraction.bant.budget_confidence == 0.85
    assert len(llm_server.requests) == 2
    assert "Validation Error" in json.dumps(llm_server.requests[1]["messages"][-1])


async def test_output_invalid_on_every_reask_fails_open(llm_server: FakeLLMServer) -> None:
    llm_server.reply_builder = lambda _request: {"overall_confidence": 2}
    state = known_state()
    before = state.model_dump()

    result = await extract(extractor_for(llm_server), state)

    assert result.status == "failed" and result.extraction is None
    assert result.error == "ValidationError"
    assert len(llm_server.requests) == MAX_RETRIES + 1  # re-asks only; no transport retries
    assert state.model_dump() == before


# --- transport retries and fail-open ------------------------------------------------------


async def test_rate_limit_then_success_is_retried(llm_server: FakeLLMServer) -> None:
    llm_server.script(ErrorReply(status=429), ToolCallReply(arguments=VALID))

    result = await extract(extractor_for(llm_server))

    assert result.status == "ok" and result.attempts == 2
    assert len(llm_server.requests) == 2  # LiteLLM and the OpenAI SDK did not retry on their own


@pytest.mark.parametrize("status", [500, 503])
async def test_server_error_forever_fails_open_within_the_budget(
    llm_server: FakeLLMServer, status: int
) -> None:
    llm_server.mode = {"mode": "error", "status": status}
    state = known_state()
    before = state.model_dump()

    with capture_logs() as logs:
        result = await extract(extractor_for(llm_server), state)

    assert result.status == "failed" and result.extraction is None
    assert result.error in {"InternalServerError", "ServiceUnavailableError"}
    assert len(llm_server.requests) == TRANSPORT_ATTEMPTS
    assert state.model_dump() == before
    assert planned_waits(logs) == TRANSPORT_ATTEMPTS - 1 and sum(waits(logs)) < BUDGET_S


async def test_reply_slower_than_the_timeout_fails_open_within_the_budget(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.latency_s = 10 * TIMEOUT_S
    # Attempts alone would allow 20 s of timeouts: the total budget is what must stop it.
    extractor = extractor_for(llm_server, llm_transport_attempts=40)

    result = await extract(extractor)

    assert result.status == "failed" and result.extraction is None
    assert result.error in {"Timeout", "TimeoutError"}
    # Each request waits out the full timeout: the budget has room for this many, not 40.
    assert 2 <= len(llm_server.requests) <= BUDGET_S / TIMEOUT_S


async def test_client_error_is_not_retried(llm_server: FakeLLMServer) -> None:
    llm_server.mode = {"mode": "error", "status": 401}

    result = await extract(extractor_for(llm_server))

    assert result.status == "failed" and result.error == "AuthenticationError"
    assert len(llm_server.requests) == 1


async def test_connection_refused_fails_open_within_the_budget() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = FakeLLMServer(port=port)
    extractor = extractor_for(closed)

    with capture_logs() as logs:
        result = await extract(extractor)

    assert result.status == "failed" and result.extraction is None
    assert result.attempts == TRANSPORT_ATTEMPTS
    assert planned_waits(logs) == TRANSPORT_ATTEMPTS - 1 and sum(waits(logs)) < BUDGET_S


def test_retries_stop_before_a_backoff_that_would_cross_the_budget(
    llm_server: FakeLLMServer,
) -> None:
    """The budget on tenacity's own clock, set by hand: a retry whose backoff would end past
    `LLM_RETRY_BUDGET_S` is not made, one that ends inside it is."""
    stop = extractor_for(llm_server, llm_transport_attempts=40)._retrying().stop

    def retry_after(elapsed_s: float, backoff_s: float) -> RetryCallState:
        state = RetryCallState(retry_object=AsyncRetrying(), fn=None, args=(), kwargs={})
        state.attempt_number = 2
        state.start_time, state.outcome_timestamp = 100.0, 100.0 + elapsed_s
        state.upcoming_sleep = backoff_s
        return state

    assert not stop(retry_after(BUDGET_S - 1.0, 0.5))
    assert stop(retry_after(BUDGET_S - 1.0, 1.5))
    assert stop(retry_after(BUDGET_S, 0.0))


def waits(logs: list[dict[str, Any]]) -> list[float]:
    """The backoff the extractor planned before each retry (from its `llm_transport_retry`)."""
    return [float(line["wait_s"]) for line in logs if line["event"] == "llm_transport_retry"]


def planned_waits(logs: list[dict[str, Any]]) -> int:
    return len(waits(logs))


async def test_failures_are_logged_without_turn_text(llm_server: FakeLLMServer) -> None:
    llm_server.script(ErrorReply(status=429))
    llm_server.mode = {"mode": "error", "status": 500}

    with capture_logs() as logs:
        await extract(extractor_for(llm_server))

    failure = next(entry for entry in logs if entry["event"] == "extraction_failed")
    assert failure["error"] == "InternalServerError"
    assert failure["attempts"] == TRANSPORT_ATTEMPTS
    assert failure["model"] == "openai/fake-model"
    assert [e["event"] for e in logs].count("llm_transport_retry") == TRANSPORT_ATTEMPTS - 1
    assert not any(text[:20] in repr(entry) for entry in logs for _, text in TURN_TEXTS)


async def test_concurrent_extractions_do_not_mix_their_accounts(llm_server: FakeLLMServer) -> None:
    extractor = extractor_for(llm_server)
    llm_server.reply_builder = lambda _request: VALID

    results = await asyncio.gather(*(extract(extractor) for _ in range(20)))

    assert all(r.status == "ok" and r.attempts == 1 for r in results)
    assert len(llm_server.requests) == 20


# --- evidence verification -----------------------------------------------------------------


async def test_hallucinated_quote_is_dropped_and_verbatim_one_kept(
    llm_server: FakeLLMServer,
) -> None:
    reply = json.loads(json.dumps(VALID))
    reply["bant"]["budget_evidence"] = [
        '"we have a BUDGET of\n around $50k for this"',  # case, spacing and quote marks differ
        "We have an unlimited budget for this.",  # never said
    ]
    reply["bant"]["timeline_evidence"] = ["we want this live by the end of Q3"]
    llm_server.script(ToolCallReply(arguments=reply))

    with capture_logs() as logs:
        result = await extract(extractor_for(llm_server))

    assert result.status == "ok" and result.evidence_dropped == 1
    # What is stored is what the prospect wrote, with their own case and spacing.
    assert result.extraction.bant.budget_evidence == ["We have a budget of around $50K for this"]
    assert result.extraction.bant.timeline_evidence == ["We want this live by   the end of Q3"]
    dropped = next(entry for entry in logs if entry["event"] == "evidence_dropped")
    assert dropped["dropped"] == 1 and dropped["fields"] == {"budget_evidence": 1}
    assert "unlimited" not in repr(logs)


async def test_quote_spanning_two_turns_is_dropped(llm_server: FakeLLMServer) -> None:
    reply = json.loads(json.dumps(VALID))
    reply["meddic"]["identify_pain_evidence"] = [f"{TURN_TEXTS[0][1]} {TURN_TEXTS[1][1]}"]
    llm_server.script(ToolCallReply(arguments=reply))

    result = await extract(extractor_for(llm_server))

    assert result.evidence_dropped == 1
    assert result.extraction.meddic.identify_pain_evidence == []


# --- configuration -------------------------------------------------------------------------


def test_build_extractor_selects_rules_or_the_llm() -> None:
    plain = {"redact_contact_data": False}
    assert isinstance(build_extractor(Settings(llm_model="rules", **plain)), RulesExtractor)
    llm = build_extractor(Settings(llm_model="openai/gpt-4o-mini", llm_timeout_s=7, **plain))
    assert isinstance(llm, QualificationExtractor)
    redacting = build_extractor(Settings(llm_model="rules"))
    assert isinstance(redacting, RedactingExtractor)
    assert isinstance(redacting.inner, RulesExtractor)
    assert (llm.model_name, llm.timeout_s) == ("openai/gpt-4o-mini", 7)
    keyed = build_extractor(Settings(llm_model="openai/x", llm_api_key="sk-secret"))
    assert "sk-secret" not in repr(keyed)


def test_cost_is_known_only_where_litellm_has_a_price() -> None:
    million = TokenUsage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    priced = cost_usd("openai/gpt-4o-mini", million)
    assert priced is not None and priced > 0
    assert cost_usd("openai/fake-model", TokenUsage(prompt_tokens=1000)) is None
    # The pinned LiteLLM's price list lists the dated Sonnet 4 at 0: no cost, not 0.
    assert cost_usd("anthropic/claude-sonnet-4-20250514", TokenUsage(prompt_tokens=1000)) is None
    assert cost_usd(Settings().llm_model, million) is not None  # the default model is priced


# --- the fake server as a subprocess (what reliability tests and the benchmark use) --------


async def test_subprocess_server_is_controlled_over_http() -> None:
    with subprocess_server(reply="echo") as base_url:
        extractor = dataclasses.replace(
            QualificationExtractor.from_settings(
                llm_settings(FakeLLMServer(), llm_api_base=base_url)
            ),
            backoff_initial_s=0.05,
        )
        root = base_url.removesuffix("/v1")

        ok = await extract(extractor)
        async with aiohttp.ClientSession() as http:
            await http.post(f"{root}/_control", json={"mode": "error", "status": 500})
            failed = await extract(extractor)
            await http.post(f"{root}/_control", json={"mode": "ok"})
            stats = await (await http.get(f"{root}/_stats")).json()

    assert ok.status == "ok" and ok.extraction.bant.need_evidence == [TURN_TEXTS[0][1]]
    assert failed.status == "failed"
    assert stats["requests"] == 1 + TRANSPORT_ATTEMPTS
    assert stats["prompt_tokens"] > 0
