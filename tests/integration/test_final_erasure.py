"""Erasure is final: an extraction that read a conversation before `forget` does not write it
back afterwards, and a conversation created again never reuses the erased one's event ids.
Real PostgreSQL, the fake LLM over HTTP (held mid-call by its gate)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from schemas import ConversationKey, ConversationTurn, update_event_id
from tests.fakes.llm_server import FakeLLMServer
from tests.harness import turn
from tests.waiting import eventually
from worker.bootstrap import build_service
from worker.qualify.deferred_extraction_scheduler import ExtractionScheduler
from worker.qualify.outcomes import BatchOutcome, ConversationOutcome
from worker.qualify.service import QualificationService
from worker.settings import Settings
from worker.store.database import Database
from worker.store.erasure import erase_conversation


def service_of(database: Database, llm: FakeLLMServer, **settings: int) -> QualificationService:
    return build_service(
        Settings(
            llm_model="openai/fake-model",
            llm_api_base=llm.base_url,
            llm_api_key="test-key",
            llm_timeout_s=5,
            update_topic="updates",
            **settings,
        ),
        database,
    )


def turns_of(key: ConversationKey, texts: list[str], *, first: int = 0) -> list[ConversationTurn]:
    return [
        ConversationTurn.model_validate(turn(key.tenant_id, key.account_id, key.contact_id, i, t))
        for i, t in enumerate(texts, start=first)
    ]


async def rows_of(owner_pool: asyncpg.Pool, key: ConversationKey) -> dict[str, int]:
    counts = {}
    for table in ("conversation_states", "conversation_turns", "deferred_turns"):
        counts[table] = await owner_pool.fetchval(
            f"SELECT count(*) FROM tenant.{table}"
            " WHERE tenant_id = $1 AND account_id = $2 AND contact_id = $3",
            *key,
        )
    counts["outbox"] = await owner_pool.fetchval(
        "SELECT count(*) FROM tenant.outbox WHERE key = $1", str(key)
    )
    return counts


NOTHING = {"conversation_states": 0, "conversation_turns": 0, "deferred_turns": 0, "outbox": 0}


async def forget_while_the_llm_holds_the_reply(
    llm: FakeLLMServer,
    database_url: str,
    key: ConversationKey,
    extraction: asyncio.Task[BatchOutcome] | asyncio.Task[list[ConversationOutcome]],
) -> None:
    await eventually(lambda: received(llm), lambda n: n == 1, what="the extraction in flight")
    erasure = await erase_conversation(database_url, key, erased_by="test")
    assert erasure.found  # the state or the deferred turns the extraction read
    assert llm.gate is not None
    llm.gate.set()
    await extraction


async def received(llm: FakeLLMServer) -> int:
    return llm.received


async def test_a_forget_during_an_extraction_is_not_undone_by_its_write(
    database: Database, database_url: str, owner_pool: asyncpg.Pool
) -> None:
    """The conversation exists (version 1); a batch's extraction reads it, `forget` erases it
    while the LLM answers, and the write finds it erased: nothing comes back, not even as a
    new conversation."""
    key = ConversationKey(uuid.uuid4(), "acme", "jane")
    async with FakeLLMServer() as llm:
        service = service_of(database, llm)
        await service.process_batch(turns_of(key, ["We need SSO for 200 agents."]))
        llm.gate = asyncio.Event()
        batch = asyncio.create_task(
            service.process_batch(turns_of(key, ["Budget is 80k."], first=1))
        )
        await forget_while_the_llm_holds_the_reply(llm, database_url, key, batch)

    [outcome] = batch.result().conversations
    assert (outcome.applied, outcome.erased, outcome.version) == (0, 1, None)
    assert await rows_of(owner_pool, key) == NOTHING


async def test_a_forget_during_a_debounced_extraction_is_not_undone_by_its_write(
    database: Database, database_url: str, owner_pool: asyncpg.Pool
) -> None:
    """Every turn was deferred (no state row to lock): the scheduler's extraction read them,
    `forget` erased them, and its write refuses the conversation instead of creating it."""
    key = ConversationKey(uuid.uuid4(), "acme", "jane")
    async with FakeLLMServer() as llm:
        service = service_of(database, llm, extract_debounce_ms=1, extract_max_wait_ms=1)
        await service.process_batch(turns_of(key, ["We need SSO.", "Budget is 80k."]))
        assert service.debounce is not None
        scheduler = ExtractionScheduler(
            database=database,
            extract=service.extract_deferred,
            debounce=service.debounce,
            concurrency=1,
            poll_interval_s=0.05,
            clock=lambda: service.clock() + service.debounce.max_wait,  # due at once
        )
        llm.gate = asyncio.Event()
        extraction = asyncio.create_task(scheduler.run_once())
        await forget_while_the_llm_holds_the_reply(llm, database_url, key, extraction)

    assert [(o.applied, o.erased) for o in extraction.result()] == [(0, 2)]
    assert await rows_of(owner_pool, key) == NOTHING


async def test_a_conversation_created_again_after_forget_gets_new_event_ids(
    database: Database, database_url: str, owner_pool: asyncpg.Pool
) -> None:
    key = ConversationKey(uuid.uuid4(), "acme", "jane")
    async with FakeLLMServer() as llm:
        service = service_of(database, llm)
        await service.process_batch(turns_of(key, ["We need SSO."]))
        first = await first_event_id(owner_pool, key)
        await erase_conversation(database_url, key, erased_by="test")
        await service.process_batch(turns_of(key, ["Hello again."], first=10))
        second = await first_event_id(owner_pool, key)
        await erase_conversation(database_url, key, erased_by="test")
        await service.process_batch(turns_of(key, ["And again."], first=20))
        third = await first_event_id(owner_pool, key)

    assert first == update_event_id(key, 1)  # a key never erased keeps the contract's rule
    assert second == update_event_id(key, 1, incarnation=2)
    assert third == update_event_id(key, 1, incarnation=3)
    assert len({first, second, third}) == 3


async def first_event_id(owner_pool: asyncpg.Pool, key: ConversationKey) -> uuid.UUID:
    row = await owner_pool.fetchrow(
        "SELECT event_id, payload FROM tenant.outbox WHERE key = $1 ORDER BY id LIMIT 1", str(key)
    )
    assert row["payload"]["version"] == 1
    event_id: uuid.UUID = row["event_id"]
    assert str(event_id) == row["payload"]["event_id"]
    return event_id
