"""The cost work of issue 15 seen through the service (`process_batch`), not the extractor
alone: a backlog far beyond the context window ends extracted, and an Anthropic request's
cache markers and cache tokens reach the metrics and the `qualification.updated` event."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import asyncpg
from prometheus_client import REGISTRY

from schemas import ConversationKey, ConversationTurn
from schemas.bounds import EVIDENCE
from tests.fakes.llm_server import (
    FakeLLMServer,
    JsonObject,
    echo_extraction,
    estimated_prompt_tokens,
    request_text,
)
from tests.harness import turn
from tests.state_store import count_turns
from worker.bootstrap import build_service
from worker.qualify.service import QualificationService
from worker.settings import Settings
from worker.store.database import Database

ANTHROPIC_MODEL = "anthropic/claude-sonnet-4-5"
TURN_CHARS = 20_000
LIMIT_TOKENS = 16_000  # the fake's context window: ~3 turns of 20,000 characters


def service(database: Database, llm: FakeLLMServer, model: str, **settings: object) -> Any:
    base = llm.anthropic_base_url if model.startswith("anthropic/") else llm.base_url
    return build_service(
        Settings(
            llm_model=model,
            llm_api_base=base,
            llm_api_key="test-key",
            llm_timeout_s=10,
            llm_transport_attempts=1,
            update_topic="updates",
            **settings,  # type: ignore[arg-type]
        ),
        database,
    )


def long_turns(tenant: uuid.UUID, count: int, *, first: int = 0) -> list[ConversationTurn]:
    turns = []
    for n in range(first, first + count):
        head = f"Turn {n} says we need connector {n}. "
        text = head + "detail " * ((TURN_CHARS - len(head)) // 7)
        turns.append(ConversationTurn.model_validate(turn(tenant, "acme", "backlog", n, text)))
    return turns


def quote_every_turn(request: JsonObject) -> JsonObject:
    """A need, evidenced by the first sentence of every turn the prompt shows."""
    texts = re.findall(r"<turn [^>]*>\n(.*?)\n</turn>", request_text(request), re.S)
    quotes = [text.split(". ", 1)[0] + "." for text in texts]
    return {"bant": {"need_identified": True, "need_confidence": 0.6, "need_evidence": quotes}}


async def events_of(owner_pool: asyncpg.Pool, key: ConversationKey) -> list[JsonObject]:
    rows = await owner_pool.fetch(
        "SELECT payload FROM tenant.outbox WHERE tenant_id = $1 AND key = $2 ORDER BY id",
        key.tenant_id,
        str(key),
    )
    return [dict(r["payload"]) for r in rows]


async def pending_backlog(database: Database, llm: FakeLLMServer) -> list[ConversationTurn]:
    """100 turns of 20,000 characters stored pending, as an LLM outage leaves them."""
    llm.mode = {"mode": "error", "status": 503}
    backlog = long_turns(uuid.uuid4(), 100)
    down: QualificationService = service(database, llm, "openai/fake-model")
    outcome = await down.process_batch(backlog)
    assert outcome.applied == 100
    assert await count_turns(database, backlog[0].key) == (100, 100)
    llm.reset()
    return backlog


async def test_100_pending_turns_of_20000_characters_end_extracted_in_prompts_that_fit(
    database: Database, fake_llm: FakeLLMServer, owner_pool: asyncpg.Pool
) -> None:
    backlog = await pending_backlog(database, fake_llm)
    key = backlog[0].key
    fake_llm.context_limit_tokens = LIMIT_TOKENS
    fake_llm.reply_builder = quote_every_turn
    live = service(database, fake_llm, "openai/fake-model", llm_max_prompt_tokens=LIMIT_TOKENS)

    (new,) = long_turns(key.tenant_id, 1, first=100)
    outcome = await live.process_batch([new])

    assert outcome.applied == 1
    assert await count_turns(database, key) == (101, 0)  # none pending
    events = [e for e in await events_of(owner_pool, key) if e["extraction"]["status"] == "ok"]
    assert len(events) > 10  # several calls, each its own version
    assert sum(e["extraction"]["turns"] for e in events) == 101
    # The fake counts tokens coarser than the planner (4 characters a token): a prompt it
    # refused was planned again for half, never sent again as it was.
    refused = refused_requests(fake_llm)
    assert len(events) + len(refused) == fake_llm.received
    assert len({json.dumps(b, sort_keys=True) for b in refused}) == len(refused)
    state = await owner_pool.fetchval(
        "SELECT qualification_data FROM tenant.conversation_states WHERE tenant_id = $1",
        key.tenant_id,
    )
    # Every turn was quoted by its extraction; the state keeps the newest quotes (the bound).
    newest = range(101 - EVIDENCE.items, 101)
    assert state["bant"]["need_evidence"] == [
        f"Turn {n} says we need connector {n}." for n in newest
    ]


def refused_requests(llm: FakeLLMServer) -> list[JsonObject]:
    return [b for b in llm.requests if estimated_prompt_tokens(b) > LIMIT_TOKENS]


def tokens(kind: str) -> float:
    sample = REGISTRY.get_sample_value(
        "qualification_llm_tokens_total", {"model": ANTHROPIC_MODEL, "kind": kind}
    )
    return sample or 0.0


async def test_an_anthropic_request_is_cache_marked_and_its_cache_tokens_reach_metrics_and_event(
    database: Database, fake_llm: FakeLLMServer, owner_pool: asyncpg.Pool
) -> None:
    fake_llm.reply_builder = echo_extraction
    anthropic = service(database, fake_llm, ANTHROPIC_MODEL)
    tenant = uuid.uuid4()
    first, second = (
        ConversationTurn.model_validate(
            turn(tenant, "acme", contact, 0, "We need single sign-on for 400 agents.")
        )
        for contact in ("ann", "bob")
    )
    before = {kind: tokens(kind) for kind in ("cache_write", "cache_read")}

    await anthropic.process_batch([first])
    await anthropic.process_batch([second])

    assert list(fake_llm.paths) == ["/v1/messages", "/v1/messages"]
    for body in fake_llm.requests:
        (system,) = body["system"]
        assert system["cache_control"] == {"type": "ephemeral"}  # the fixed part
        assert "cache_control" not in json.dumps(body["messages"])  # the turns are not
    (wrote,) = [e["extraction"] for e in await events_of(owner_pool, first.key)]
    (read,) = [e["extraction"] for e in await events_of(owner_pool, second.key)]
    assert wrote["cache_write_tokens"] > 1000 and wrote["cache_read_tokens"] == 0
    assert read["cache_read_tokens"] == wrote["cache_write_tokens"]
    assert read["cost_usd"] is not None and read["cost_usd"] < wrote["cost_usd"]
    assert tokens("cache_write") - before["cache_write"] == wrote["cache_write_tokens"]
    assert tokens("cache_read") - before["cache_read"] == read["cache_read_tokens"]
