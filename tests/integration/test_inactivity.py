"""Inactivity stalls against a real PostgreSQL: the sweeper (time from an injected clock), the
resume on the next turn (the LLM faked over HTTP), several sweepers at once, and a sweep
interrupted half-way."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import asyncpg

from schemas import (
    ConversationKey,
    ConversationState,
    ConversationTurn,
    DealStage,
    QualificationUpdated,
)
from tests.fakes.llm_server import EMPTY_EXTRACTION, FakeLLMServer, ToolCallReply
from tests.gap_reports import assert_next_stages_consistent, key_of
from tests.harness import BASE_TIME, turn
from tests.state_store import save_state
from tests.waiting import eventually
from worker.bootstrap import build_service
from worker.qualify.inactivity import InactivitySweeper
from worker.qualify.service import QualificationService
from worker.qualify.stages import ACTIVITY_RESUMED
from worker.settings import Settings
from worker.store.database import Database

DAYS = 30
SWEEP_AT = BASE_TIME + timedelta(days=DAYS + 1)  # the clock moved 31 days past the turns
QUIET = BASE_TIME  # the latest turn of a quiet deal
RECENT = BASE_TIME + timedelta(days=20)  # 11 days before the sweep


def sweeper(database: Database, **overrides: Any) -> InactivitySweeper:
    values: dict[str, Any] = {
        "database": database,
        "update_topic": "updates",
        "stall_after_days": DAYS,
        "interval_s": 3600.0,
        "clock": lambda: SWEEP_AT,
    }
    return InactivitySweeper(**(values | overrides))


def llm_service(database: Database, fake_llm: FakeLLMServer) -> QualificationService:
    settings = Settings(
        llm_model="openai/fake-model",
        llm_api_base=fake_llm.base_url,
        llm_mode="tools",  # the scripted replies are tool calls
        llm_api_key="sk-test",
        llm_transport_attempts=1,
        update_topic="updates",
    )
    service = build_service(settings, database)
    service.clock = lambda: SWEEP_AT + timedelta(days=2)
    return service


async def deal(
    database: Database,
    key: ConversationKey,
    stage: DealStage,
    *,
    last_turn: Any = QUIET,
    stalled_from: DealStage | None = None,
    version: int = 3,
) -> ConversationState:
    return await save_state(
        database,
        ConversationState(
            tenant_id=key.tenant_id,
            account_id=key.account_id,
            contact_id=key.contact_id,
            contact_email=f"{key.contact_id}@example.com",
            deal_stage=stage,
            stalled_from=stalled_from,
            last_interaction=last_turn,
            interaction_count=0 if last_turn is None else 2,
            version=version,
        ),
    )


async def stored_stage(
    owner_pool: asyncpg.Pool, key: ConversationKey
) -> tuple[str, str | None, int]:
    row = await owner_pool.fetchrow(
        "SELECT deal_stage, stalled_from, version FROM tenant.conversation_states"
        " WHERE tenant_id = $1 AND account_id = $2 AND contact_id = $3",
        *key,
    )
    return row["deal_stage"], row["stalled_from"], row["version"]


async def events(owner_pool: asyncpg.Pool) -> list[QualificationUpdated]:
    rows = await owner_pool.fetch("SELECT payload FROM tenant.outbox ORDER BY id")
    return [QualificationUpdated.model_validate(r["payload"]) for r in rows]


async def transitions(owner_pool: asyncpg.Pool, key: ConversationKey) -> list[tuple[Any, ...]]:
    rows = await owner_pool.fetch(
        "SELECT version, from_stage, to_stage, accepted, reason, source"
        " FROM tenant.stage_transitions"
        " WHERE tenant_id = $1 AND account_id = $2 AND contact_id = $3 ORDER BY id",
        *key,
    )
    return [tuple(r) for r in rows]


async def test_a_sweep_stalls_exactly_the_quiet_open_deals_once(
    database: Database, owner_pool: asyncpg.Pool, fake_llm: FakeLLMServer
) -> None:
    one, two = uuid.uuid4(), uuid.uuid4()  # two tenants: the listing crosses them
    quiet = {
        ConversationKey(one, "acme", "ann"): DealStage.PROSPECTING,
        ConversationKey(one, "acme", "bob"): DealStage.DISCOVERY,
        ConversationKey(two, "globex", "cy"): DealStage.EVALUATION,
        ConversationKey(two, "globex", "dee"): DealStage.NEGOTIATION,
    }
    for key, stage in quiet.items():
        await deal(database, key, stage)
    untouched = [
        await deal(database, ConversationKey(one, "acme", "won"), DealStage.CLOSED_WON),
        await deal(database, ConversationKey(two, "globex", "lost"), DealStage.CLOSED_LOST),
        await deal(
            database,
            ConversationKey(one, "acme", "paused"),
            DealStage.STALLED,
            stalled_from=DealStage.QUALIFICATION,
        ),
        await deal(
            database, ConversationKey(one, "acme", "busy"), DealStage.DISCOVERY, last_turn=RECENT
        ),
        await deal(
            database, ConversationKey(two, "globex", "new"), DealStage.PROSPECTING, last_turn=None
        ),
    ]

    assert await sweeper(database).sweep() == len(quiet)

    for key, stage in quiet.items():
        assert await stored_stage(owner_pool, key) == ("stalled", stage.value, 4)
        assert await transitions(owner_pool, key) == [
            (4, stage.value, "stalled", True, "no activity for 30 days", "inactivity")
        ]
    for state in untouched:
        key = ConversationKey(state.tenant_id, state.account_id, state.contact_id)
        assert await stored_stage(owner_pool, key) == (
            state.deal_stage.value,
            state.stalled_from.value if state.stalled_from else None,
            3,
        )
    stalls = await events(owner_pool)
    assert sorted(map(str, map(key_of, stalls))) == sorted(map(str, quiet))
    for event in stalls:
        assert event.source == "inactivity" and event.extraction is None
        assert event.version == 4 and event.occurred_at == SWEEP_AT
        assert event.previous_stage is quiet[key_of(event)]
        assert event.next_stage is not None and event.next_stage.stage is quiet[key_of(event)]
    assert assert_next_stages_consistent(stalls) == len(quiet)

    assert await sweeper(database).sweep() == 0, "a second sweep finds nothing"
    assert len(await events(owner_pool)) == len(quiet)

    # The next turn of a deal stalled this way resumes it where it stalled.
    fake_llm.script(ToolCallReply(arguments=EMPTY_EXTRACTION))
    bob = ConversationKey(one, "acme", "bob")
    late = turn(one, "acme", "bob", 7, "Sorry for the silence, we are back on it.")
    late["occurred_at"] = (SWEEP_AT + timedelta(days=1)).isoformat()
    outcome = await llm_service(database, fake_llm).process_batch(
        [ConversationTurn.model_validate(late)]
    )
    assert outcome.applied == 1
    assert await stored_stage(owner_pool, bob) == ("discovery", None, 5)
    assert (await transitions(owner_pool, bob))[-1] == (
        5, "stalled", "discovery", True, ACTIVITY_RESUMED, "turns"
    )  # fmt: skip
    resumed = (await events(owner_pool))[-1]
    assert (resumed.previous_stage, resumed.deal_stage) == (DealStage.STALLED, DealStage.DISCOVERY)
    assert resumed.stage_change is not None and resumed.stage_change.reason == ACTIVITY_RESUMED
    assert assert_next_stages_consistent(await events(owner_pool)) == len(quiet) + 1
    assert await sweeper(database).sweep() == 0, "a resumed deal is active again"


async def test_a_deal_the_model_stalled_does_not_resume_on_a_turn(
    database: Database, owner_pool: asyncpg.Pool, fake_llm: FakeLLMServer
) -> None:
    tenant = uuid.uuid4()
    key = ConversationKey(tenant, "acme", "jane")
    stall = {**EMPTY_EXTRACTION, "suggested_stage": "stalled", "stage_reason": "on hold"}
    fake_llm.script(ToolCallReply(arguments=stall), ToolCallReply(arguments=EMPTY_EXTRACTION))
    service = llm_service(database, fake_llm)
    for sequence in range(2):
        payload = turn(tenant, "acme", "jane", sequence, f"turn {sequence}")
        await service.process_batch([ConversationTurn.model_validate(payload)])

    assert await stored_stage(owner_pool, key) == ("stalled", "prospecting", 2)
    assert await transitions(owner_pool, key) == [
        (1, "prospecting", "stalled", True, "on hold", "turns")
    ]


async def test_two_sweepers_at_once_stall_each_deal_once(
    database: Database, owner_pool: asyncpg.Pool
) -> None:
    tenant = uuid.uuid4()
    keys = [ConversationKey(tenant, "acme", f"c{i}") for i in range(12)]
    for key in keys:
        await deal(database, key, DealStage.DISCOVERY)
    first, second = sweeper(database, batch_size=5), sweeper(database, batch_size=5)

    counts = await asyncio.gather(first.sweep(), second.sweep())

    assert sum(counts) == len(keys)
    # Past the advisory lock too: the re-check under each row lock stalls a deal once.
    raced = await asyncio.gather(
        *(s.stall_if_quiet(key, now=SWEEP_AT) for key in keys for s in (first, second))
    )
    assert not any(raced)
    stalls = await events(owner_pool)
    assert sorted(str(key_of(e)) for e in stalls) == sorted(map(str, keys))
    for key in keys:
        assert len(await transitions(owner_pool, key)) == 1


async def test_a_deal_locked_by_a_writer_is_rechecked_after_its_turn(
    database: Database, owner_pool: asyncpg.Pool
) -> None:
    """A turn written while the sweeper waits for the row: under the lock the deal is no longer
    quiet, so it is not stalled."""
    key = ConversationKey(uuid.uuid4(), "acme", "jane")
    await deal(database, key, DealStage.QUALIFICATION)
    async with owner_pool.acquire() as writer, writer.transaction():
        await writer.execute(
            "SELECT 1 FROM tenant.conversation_states"
            " WHERE tenant_id = $1 AND account_id = $2 AND contact_id = $3 FOR UPDATE",
            *key,
        )
        sweep = asyncio.create_task(sweeper(database).sweep())
        await eventually(lambda: waiting_for_locks(owner_pool), lambda n: n == 1, what="a wait")
        await writer.execute(
            "UPDATE tenant.conversation_states SET last_interaction = $4, version = version + 1"
            " WHERE tenant_id = $1 AND account_id = $2 AND contact_id = $3",
            *key,
            SWEEP_AT - timedelta(hours=1),
        )
    assert await sweep == 0
    assert await stored_stage(owner_pool, key) == ("qualification", None, 4)
    assert await events(owner_pool) == []


async def waiting_for_locks(owner_pool: asyncpg.Pool) -> int:
    """Backends of this database waiting for a lock (the sweeper, blocked on a row)."""
    count: int = await owner_pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return count


async def test_a_sweep_interrupted_half_way_stalls_the_rest_once_when_run_again(
    database: Database, owner_pool: asyncpg.Pool
) -> None:
    """The crash: the sweep dies while it waits for the fourth deal's row (the test holds that
    row), after three stalls committed. Each stall is its own transaction, so the three stay,
    the fourth was never written, and the next sweep stalls the other three exactly once."""
    tenant = uuid.uuid4()
    keys = [ConversationKey(tenant, "acme", f"c{i}") for i in range(6)]
    for i, key in enumerate(keys):  # quietest first: the sweep's order
        await deal(database, key, DealStage.EVALUATION, last_turn=QUIET + timedelta(hours=i))
    async with owner_pool.acquire() as holder:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute(
            "SELECT 1 FROM tenant.conversation_states"
            " WHERE tenant_id = $1 AND account_id = $2 AND contact_id = $3 FOR UPDATE",
            *keys[3],
        )
        interrupted = asyncio.create_task(sweeper(database, batch_size=2).sweep())
        await eventually(lambda: waiting_for_locks(owner_pool), lambda n: n == 1, what="a wait")
        interrupted.cancel()
        await asyncio.gather(interrupted, return_exceptions=True)
        await transaction.rollback()

    stages = [(await stored_stage(owner_pool, key))[0] for key in keys]
    assert stages == ["stalled"] * 3 + ["evaluation"] * 3
    assert len(await events(owner_pool)) == 3

    assert await sweeper(database, batch_size=2).sweep() == 3
    for key in keys:
        assert await stored_stage(owner_pool, key) == ("stalled", "evaluation", 4)
        assert len(await transitions(owner_pool, key)) == 1
    versions = sorted((str(key_of(e)), e.version) for e in await events(owner_pool))
    assert versions == sorted((str(key), 4) for key in keys), "one event per stall, no gaps"
