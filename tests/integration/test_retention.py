"""Turn text retention (worker/store/retention.py) with an injected clock, as the worker's role."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg

from schemas import ConversationKey, ConversationTurn
from tests.fakes.llm_server import ErrorReply, FakeLLMServer
from tests.harness import turn
from tests.state_store import RULES
from worker.bootstrap import build_service
from worker.extract.llm import QualificationExtractor
from worker.extract.port import Extractor
from worker.qualify.repository import ConversationStateRepository
from worker.qualify.service import QualificationService
from worker.settings import Settings
from worker.store.database import Database
from worker.store.retention import RETENTION_LOCK, TurnTextRetention
from worker.tools.reextract import reextract, report

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
RETENTION_DAYS = 30


def service_at(
    repository: ConversationStateRepository, when: datetime, extractor: Extractor | None = None
) -> QualificationService:
    """The service with its clock at `when`: turns it extracts are extracted then."""
    service = build_service(RULES, repository.database)
    return replace(service, clock=lambda: when, extractor=extractor or service.extractor)


def turn_of(key: ConversationKey, sequence: int, text: str) -> ConversationTurn:
    return ConversationTurn.model_validate(
        turn(key.tenant_id, key.account_id, key.contact_id, sequence, text)
    )


async def turns_by_event_id(owner_pool: asyncpg.Pool) -> dict[uuid.UUID, asyncpg.Record]:
    rows = await owner_pool.fetch("SELECT * FROM tenant.conversation_turns")
    return {row["event_id"]: row for row in rows}


async def test_retention_clears_exactly_the_text_of_turns_extracted_before_the_cutoff(
    repository: ConversationStateRepository,
    pool: asyncpg.Pool,
    owner_pool: asyncpg.Pool,
    fake_llm: FakeLLMServer,
) -> None:
    old = ConversationKey(uuid.uuid4(), "acme", "jane")  # another tenant for each: the sweep
    recent = ConversationKey(uuid.uuid4(), "acme", "bob")  # crosses row-level security
    old_turns = [turn_of(old, 0, "We need faster onboarding."), turn_of(old, 1, "Budget $80k.")]
    recent_turn = turn_of(recent, 0, "We need better reports.")
    pending_turn = turn_of(old, 2, "Our CFO signs off on anything over $50k.")
    await service_at(repository, T0).process_batch(old_turns)
    await service_at(repository, T0 + timedelta(days=10)).process_batch([recent_turn])
    failing = QualificationExtractor(
        model_name="openai/fake", api_base=fake_llm.base_url, api_key="sk-x", transport_attempts=1
    )
    fake_llm.script(ErrorReply(status=500))
    await service_at(repository, T0, failing).process_batch([pending_turn])
    before = await turns_by_event_id(owner_pool)
    assert before[pending_turn.event_id]["extracted_at"] is None

    now = T0 + timedelta(days=RETENTION_DAYS, hours=1)
    retention = TurnTextRetention(
        database=Database(pool),
        interval_s=3600,
        retention_days=RETENTION_DAYS,
        batch_size=1,
        clock=lambda: now,
    )
    assert await retention.sweep() == 2
    after = await turns_by_event_id(owner_pool)

    for sent in old_turns:
        row = after[sent.event_id]
        assert (row["text"], row["metadata"], row["text_cleared_at"]) == ("", {}, now)
        assert row["fingerprint"] == before[sent.event_id]["fingerprint"] == sent.fingerprint()
    for kept in (recent_turn, pending_turn):
        assert after[kept.event_id]["text"] == kept.text
        assert after[kept.event_id]["text_cleared_at"] is None
    assert await retention.sweep() == 0, "cleared turns are not cleared again"


async def test_a_redelivered_turn_whose_text_was_cleared_is_still_a_duplicate(
    repository: ConversationStateRepository, pool: asyncpg.Pool
) -> None:
    key = ConversationKey(uuid.uuid4(), "acme", "jane")
    sent = [turn_of(key, 0, "We need faster onboarding."), turn_of(key, 1, "Budget $80k.")]
    await service_at(repository, T0).process_batch(sent)
    state_before = await repository.get_state(*key)
    now = T0 + timedelta(days=RETENTION_DAYS + 1)
    retention = TurnTextRetention(
        database=Database(pool), interval_s=3600, retention_days=RETENTION_DAYS, clock=lambda: now
    )
    assert await retention.sweep() == 2

    again = await service_at(repository, now).process_batch(sent)

    assert (again.applied, again.duplicates, again.dead_letters()) == (0, 2, {})
    state_after = await repository.get_state(*key)
    assert state_before is not None and state_after is not None
    assert state_after.version == state_before.version
    assert state_after.interaction_count == 2


async def test_reextract_all_skips_cleared_turns_and_says_how_many(
    repository: ConversationStateRepository, pool: asyncpg.Pool, database_url: str
) -> None:
    key = ConversationKey(uuid.uuid4(), "acme", "jane")
    await service_at(repository, T0).process_batch([turn_of(key, 0, "We need onboarding.")])
    later = T0 + timedelta(days=RETENTION_DAYS + 1)
    await service_at(repository, later).process_batch([turn_of(key, 1, "Budget is $80k.")])
    retention = TurnTextRetention(
        database=Database(pool), interval_s=3600, retention_days=RETENTION_DAYS, clock=lambda: later
    )
    assert await retention.sweep() == 1
    settings = Settings(database_url=database_url, llm_model="rules", llm_concurrency=2)

    done = await reextract(settings, key.tenant_id, stored_turns=True)

    text, code = report(done)
    assert code == 0
    assert done.cleared_turns == 1
    assert "1 turns skipped: text cleared by retention" in text
    assert [o.version for o in done.outcomes] == [3], "the turn with text was extracted"


async def test_only_one_worker_sweeps_at_a_time(
    repository: ConversationStateRepository, pool: asyncpg.Pool, owner_pool: asyncpg.Pool
) -> None:
    key = ConversationKey(uuid.uuid4(), "acme", "jane")
    await service_at(repository, T0).process_batch([turn_of(key, 0, "We need onboarding.")])
    now = T0 + timedelta(days=RETENTION_DAYS + 1)
    retention = TurnTextRetention(
        database=Database(pool), interval_s=3600, retention_days=RETENTION_DAYS, clock=lambda: now
    )
    async with owner_pool.acquire() as other_worker:
        lock = "SELECT pg_try_advisory_lock(7302, hashtext($1))"
        assert await other_worker.fetchval(lock, RETENTION_LOCK)
        assert await retention.sweep() == 0
        await other_worker.execute("SELECT pg_advisory_unlock(7302, hashtext($1))", RETENTION_LOCK)
    assert await retention.sweep() == 1
