"""Debounced extraction against a real PostgreSQL and the fake LLM over HTTP (real instructor
+ LiteLLM): a batch defers its turns, the scheduler extracts a conversation once it is due,
and time is an injected clock."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from prometheus_client import REGISTRY

from schemas import ConversationKey, ConversationTurn, QualificationOverride
from tests.fakes.llm_server import FakeLLMServer, JsonObject, echo_extraction, request_text
from tests.harness import turn
from tests.state_store import count_turns
from tests.waiting import eventually
from worker.bootstrap import build_service
from worker.errors import DeferredExtractionBusy
from worker.qualify.deferred_extraction_scheduler import LEASE, ExtractionScheduler
from worker.qualify.service import QualificationService
from worker.settings import Settings
from worker.store.database import Database

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DEBOUNCE_MS = 5_000
MAX_WAIT_MS = 20_000


class Clock:
    """The time the service and the scheduler see; tests move it."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def debounced_service(
    database: Database, llm: FakeLLMServer, clock: Clock, **overrides: Any
) -> QualificationService:
    settings = Settings(
        llm_model="openai/fake-model",
        llm_api_base=llm.base_url,
        llm_api_key="test-key",
        llm_timeout_s=5,
        update_topic="updates",
        **({"extract_debounce_ms": DEBOUNCE_MS, "extract_max_wait_ms": MAX_WAIT_MS} | overrides),
    )
    service = build_service(settings, database)
    service.clock = clock
    return service


def scheduler_for(service: QualificationService, clock: Clock) -> ExtractionScheduler:
    assert service.debounce is not None
    return ExtractionScheduler(
        database=service.database,
        extract=service.extract_deferred,
        debounce=service.debounce,
        concurrency=16,
        poll_interval_s=0.05,
        clock=clock,
    )


def conversation_turns(
    tenant: uuid.UUID, contact: str, count: int, *, first: int = 0
) -> list[ConversationTurn]:
    return [
        ConversationTurn.model_validate(
            turn(tenant, "acme", contact, i, f"[{contact}] We need SSO for {i + 1}00 agents.")
        )
        for i in range(first, first + count)
    ]


async def outbox_events(owner_pool: asyncpg.Pool, key: ConversationKey) -> list[JsonObject]:
    rows = await owner_pool.fetch(
        "SELECT payload FROM tenant.outbox WHERE tenant_id = $1 AND key = $2 ORDER BY id",
        key.tenant_id,
        str(key),
    )
    return [dict(r["payload"]) for r in rows]


async def deferred_rows(owner_pool: asyncpg.Pool) -> int:
    count: int = await owner_pool.fetchval("SELECT count(*) FROM tenant.deferred_turns")
    return count


async def test_a_burst_of_five_turns_is_one_llm_call_and_one_version(
    database: Database, fake_llm: FakeLLMServer, owner_pool: asyncpg.Pool
) -> None:
    clock = Clock()
    service = debounced_service(database, fake_llm, clock)
    scheduler = scheduler_for(service, clock)
    tenant = uuid.uuid4()
    burst = conversation_turns(tenant, "jane", 5)
    key = burst[0].key
    for one in burst:  # five batches a second apart, as live chat delivers them
        outcome = await service.process_batch([one])
        assert (outcome.deferred, outcome.applied) == (1, 0)
        clock.advance(seconds=1)
    assert await scheduler.run_once() == []  # quiet for 1 s of the 5 s debounce: not due
    assert fake_llm.received == 0
    assert await count_turns(database, key) == (0, 0)  # deferred, not stored: nothing counted

    clock.advance(milliseconds=DEBOUNCE_MS)
    outcomes = await scheduler.run_once()

    assert [(o.applied, o.version) for o in outcomes] == [(5, 1)]
    assert fake_llm.received == 1
    events = await outbox_events(owner_pool, key)
    assert [e["version"] for e in events] == [1]
    assert set(events[0]["turn_event_ids"]) == {str(t.event_id) for t in burst}
    assert events[0]["interaction_count"] == 5
    assert await count_turns(database, key) == (5, 0)
    assert await deferred_rows(owner_pool) == 0
    assert await scheduler.run_once() == []  # off the schedule


async def test_the_turns_a_scheduled_extraction_stores_count_as_applied(
    database: Database, fake_llm: FakeLLMServer
) -> None:
    """README, Metrics: deferred turns are counted as applied when their version commits, so
    `turns_deferred_total` against `turns_applied_total` shows how far behind extraction is."""
    clock = Clock()
    service = debounced_service(database, fake_llm, clock)
    scheduler = scheduler_for(service, clock)
    await service.process_batch(conversation_turns(uuid.uuid4(), "jane", 3))
    clock.advance(milliseconds=DEBOUNCE_MS)
    before = applied_total()

    outcomes = await scheduler.run_once()

    assert [o.applied for o in outcomes] == [3]
    assert applied_total() - before == 3


def applied_total() -> float:
    return REGISTRY.get_sample_value("qualification_turns_applied_total") or 0.0


async def test_a_conversation_that_never_goes_quiet_is_extracted_after_the_maximum_wait(
    database: Database, fake_llm: FakeLLMServer, owner_pool: asyncpg.Pool
) -> None:
    clock = Clock()
    service = debounced_service(database, fake_llm, clock)
    scheduler = scheduler_for(service, clock)
    turns = conversation_turns(uuid.uuid4(), "chatty", 12)
    extracted: list[int] = []
    for index, one in enumerate(turns):  # a turn every 2 s: never 5 s quiet
        await service.process_batch([one])
        extracted += [o.applied for o in await scheduler.run_once()]
        if index < len(turns) - 1:
            clock.advance(seconds=2)
    # The oldest deferred turn waited 20 s at the 11th turn (t = 20 s): those 11 go together.
    assert extracted == [11]
    assert fake_llm.received == 1
    assert await count_turns(database, turns[0].key) == (11, 0)
    assert await deferred_rows(owner_pool) == 1  # the 12th waits for its own quiet


async def test_redelivered_turns_are_duplicates_whether_deferred_or_already_extracted(
    database: Database, fake_llm: FakeLLMServer, owner_pool: asyncpg.Pool
) -> None:
    clock = Clock()
    service = debounced_service(database, fake_llm, clock)
    scheduler = scheduler_for(service, clock)
    batch = conversation_turns(uuid.uuid4(), "jane", 3)
    await service.process_batch(batch)
    again = await service.process_batch(batch)
    assert (again.deferred, again.duplicates) == (0, 3)

    clock.advance(milliseconds=DEBOUNCE_MS)
    await scheduler.run_once()
    after = await service.process_batch(batch)
    assert (after.deferred, after.duplicates) == (0, 3)
    assert fake_llm.received == 1
    assert await count_turns(database, batch[0].key) == (3, 0)
    assert await deferred_rows(owner_pool) == 0


async def test_a_deferred_turn_reusing_a_stored_event_id_is_a_conflict(
    database: Database, fake_llm: FakeLLMServer
) -> None:
    clock = Clock()
    service = debounced_service(database, fake_llm, clock)
    original = conversation_turns(uuid.uuid4(), "jane", 1)[0]
    await service.process_batch([original])
    reused = ConversationTurn.model_validate(
        original.model_dump(mode="json") | {"text": "Something else entirely."}
    )
    outcome = await service.process_batch([reused])
    assert outcome.deferred == 0
    assert [d.reason for d in outcome.dead_letters().values()] == ["conflict"]


async def test_an_override_is_applied_after_the_turns_deferred_before_it(
    database: Database, fake_llm: FakeLLMServer, owner_pool: asyncpg.Pool
) -> None:
    """An override of a conversation whose turns still wait: they are extracted first, so the
    conversation is known and the override follows what was said before it."""
    clock = Clock()
    service = debounced_service(database, fake_llm, clock)
    turns = conversation_turns(uuid.uuid4(), "jane", 3)
    await service.process_batch(turns[:2])
    override = QualificationOverride.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "tenant_id": str(turns[0].tenant_id),
            "account_id": "acme",
            "contact_id": "jane",
            "actor": {"type": "user", "id": "rep-1"},
            "stage": {"to": "qualification", "reason": "call went well"},
            "occurred_at": (turns[2].occurred_at + timedelta(seconds=1)).isoformat(),
        }
    )
    outcome = await service.process_batch([turns[2], override])
    assert outcome.dead_letters() == {}
    assert (outcome.applied, outcome.overrides_applied) == (3, 1)
    events = await outbox_events(owner_pool, turns[0].key)
    assert [e["source"] for e in events] == ["turns", "override"]
    assert len(events[0]["turn_event_ids"]) == 3
    assert await deferred_rows(owner_pool) == 0


async def test_a_crashed_claimants_conversation_is_taken_over_when_its_lease_runs_out(
    database: Database, fake_llm: FakeLLMServer, owner_pool: asyncpg.Pool
) -> None:
    """Leases run by the database's clock: a worker whose clock is far ahead does not take a
    conversation over while the lease runs; once it ran out (in the database), it does."""
    clock = Clock()
    service = debounced_service(database, fake_llm, clock)
    scheduler = scheduler_for(service, clock)
    turns = conversation_turns(uuid.uuid4(), "jane", 4)
    await service.process_batch(turns)
    clock.advance(milliseconds=DEBOUNCE_MS)
    assert service.debounce is not None
    # A worker claims it and dies before extracting: its claim is all that is left of it.
    dead = await database.claim_due_extractions(
        now=clock(),
        debounce=service.debounce,
        lease=scheduler.lease,
        claim=uuid.uuid4(),
        limit=10,
    )
    assert dead == [turns[0].key]
    assert await scheduler.run_once() == []  # someone else's, while the lease runs

    clock.advance(seconds=scheduler.lease.total_seconds() + 1)  # this worker's clock runs ahead
    assert await scheduler.run_once() == [], "a worker's clock must not end a lease"

    await expire_leases(owner_pool)
    outcomes = await scheduler.run_once()
    assert [(o.applied, o.version) for o in outcomes] == [(4, 1)]
    assert await count_turns(database, turns[0].key) == (4, 0)


async def expire_leases(owner_pool: asyncpg.Pool) -> None:
    """What the database's clock passing the leases looks like to the schedulers."""
    await owner_pool.execute(
        "UPDATE tenant.extraction_due SET claimed_until = now() - interval '1 second'"
        " WHERE claim IS NOT NULL"
    )


async def test_a_crash_after_the_version_but_before_the_release_only_releases(
    database: Database, fake_llm: FakeLLMServer, owner_pool: asyncpg.Pool
) -> None:
    """The deferred rows outlive a version when the worker dies between the two commits: the
    next claimant finds the turns stored (duplicates) and makes neither a call nor a version."""
    clock = Clock()
    service = debounced_service(database, fake_llm, clock)
    scheduler = scheduler_for(service, clock)
    turns = conversation_turns(uuid.uuid4(), "jane", 2)
    await service.process_batch(turns)
    immediate = build_service(
        Settings(
            llm_model="openai/fake-model",
            llm_api_base=fake_llm.base_url,
            llm_api_key="k",
            update_topic="updates",
        ),
        database,
    )
    await immediate.process_conversation(turns[0].key, turns)  # the version, not the release
    assert fake_llm.received == 1
    clock.advance(milliseconds=DEBOUNCE_MS)
    outcomes = await scheduler.run_once()
    assert [(o.applied, o.duplicates, o.version) for o in outcomes] == [(0, 2, None)]
    assert fake_llm.received == 1
    assert [e["version"] for e in await outbox_events(owner_pool, turns[0].key)] == [1]
    assert await deferred_rows(owner_pool) == 0


def conversation_named(body: JsonObject) -> str | None:
    found = re.search(r"\[(c\d+)\]", request_text(body))
    return found.group(1) if found else None


async def test_two_schedulers_never_extract_one_conversation_at_once(
    database_url: str, owner_pool: asyncpg.Pool
) -> None:
    """Two workers' schedulers (each its own pool and service) claim the same due
    conversations concurrently, round after round: each conversation is extracted once, by
    one of them, and the fake LLM never has two requests of one conversation in flight."""
    from worker.store.database import open_database

    conversations = 24
    async with (
        FakeLLMServer(
            latency_s=0.05, reply_builder=echo_extraction, request_key=conversation_named
        ) as llm,
        open_database(database_url, max_size=6, role="qualification_worker") as first,
        open_database(database_url, max_size=6, role="qualification_worker") as second,
    ):
        clock = Clock()
        services = [debounced_service(db, llm, clock) for db in (first, second)]
        tenant = uuid.uuid4()
        for n in range(conversations):
            await services[n % 2].process_batch(conversation_turns(tenant, f"c{n}", 3))
        clock.advance(milliseconds=DEBOUNCE_MS)
        schedulers = [scheduler_for(s, clock) for s in services]
        for s in schedulers:
            s.concurrency = 5  # several rounds each, interleaved
        rounds: Callable[[ExtractionScheduler], Any] = lambda s: drain_schedule(s)  # noqa: E731
        done = await asyncio.gather(*(rounds(s) for s in schedulers))

    assert all(done), "both schedulers took part"
    assert sum(len(d) for d in done) == conversations
    assert llm.received == conversations
    assert llm.peak_in_flight == {f"c{n}": 1 for n in range(conversations)}
    versions = await owner_pool.fetch(
        "SELECT account_id, contact_id, version, interaction_count FROM tenant.conversation_states"
        " WHERE tenant_id = $1",
        tenant,
    )
    assert {(r["version"], r["interaction_count"]) for r in versions} == {(1, 3)}
    assert await deferred_rows(owner_pool) == 0


async def drain_schedule(scheduler: ExtractionScheduler) -> list[Any]:
    """Rounds until a round finds nothing due."""
    outcomes: list[Any] = []
    while round_ := await scheduler.run_once():
        outcomes += round_  # each round awaits the database: the other scheduler claims too
    return outcomes


async def test_on_stop_the_scheduler_lets_an_extraction_in_flight_finish(
    database: Database, owner_pool: asyncpg.Pool
) -> None:
    async with FakeLLMServer(latency_s=0.5, reply_builder=echo_extraction) as llm:
        clock = Clock()
        service = debounced_service(database, llm, clock)
        scheduler = scheduler_for(service, clock)
        turns = conversation_turns(uuid.uuid4(), "jane", 2)
        await service.process_batch(turns)
        clock.advance(milliseconds=DEBOUNCE_MS)
        stop = asyncio.Event()
        running = asyncio.create_task(scheduler.run(stop))
        await eventually(lambda: answered(llm), lambda n: n == 1, what="a request in flight")
        stop.set()  # SIGTERM: the lifespan sets the task's stop event
        await running

    assert await count_turns(database, turns[0].key) == (2, 0)
    assert await deferred_rows(owner_pool) == 0


async def test_an_extraction_cancelled_by_the_drain_releases_its_claim_at_once(
    database: Database, owner_pool: asyncpg.Pool
) -> None:
    """A provider that never answers: the drain cancels the extraction and ends its claim,
    so another worker takes the conversation over without waiting for the lease."""
    async with FakeLLMServer(reply_builder=echo_extraction) as llm:
        llm.mode = {"mode": "hang"}
        clock = Clock()
        service = debounced_service(database, llm, clock)
        scheduler = scheduler_for(service, clock)
        scheduler.drain_s = 0.1
        turns = conversation_turns(uuid.uuid4(), "jane", 2)
        await service.process_batch(turns)
        clock.advance(milliseconds=DEBOUNCE_MS)
        stop = asyncio.Event()
        running = asyncio.create_task(scheduler.run(stop))
        await eventually(lambda: answered(llm), lambda n: n == 1, what="a request in flight")
        stop.set()
        await running
        llm.mode = {"mode": "ok"}
        successor = scheduler_for(debounced_service(database, llm, clock), clock)
        outcomes = await successor.run_once()  # the clock did not move: no lease ran out

    assert [(o.applied, o.version) for o in outcomes] == [(2, 1)]
    assert await deferred_rows(owner_pool) == 0


async def answered(llm: FakeLLMServer) -> int:
    return llm.received


def override_of(key: ConversationKey, *, after: ConversationTurn) -> QualificationOverride:
    return QualificationOverride.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "tenant_id": str(key.tenant_id),
            "account_id": key.account_id,
            "contact_id": key.contact_id,
            "actor": {"type": "user", "id": "rep-1"},
            "stage": {"to": "discovery", "reason": "call went well"},
            "occurred_at": (after.occurred_at + timedelta(seconds=1)).isoformat(),
        }
    )


async def test_an_override_alone_first_extracts_the_conversations_deferred_turns(
    database: Database, fake_llm: FakeLLMServer, owner_pool: asyncpg.Pool
) -> None:
    """Every turn of the conversation still waits (no state row yet): the override is not an
    `unknown_conversation`, and the turns said before it make the version before its own."""
    clock = Clock()
    service = debounced_service(database, fake_llm, clock)
    scheduler = scheduler_for(service, clock)
    turns = conversation_turns(uuid.uuid4(), "jane", 3)
    key = turns[0].key
    await service.process_batch(turns)
    outcome = await service.process_batch([override_of(key, after=turns[-1])])

    assert outcome.dead_letters() == {}
    assert (outcome.applied, outcome.overrides_applied) == (3, 1)
    events = await outbox_events(owner_pool, key)
    assert [(e["source"], e["version"]) for e in events] == [("turns", 1), ("override", 2)]
    assert len(events[0]["turn_event_ids"]) == 3
    assert events[1]["deal_stage"] == "discovery"
    assert await deferred_rows(owner_pool) == 0
    clock.advance(milliseconds=DEBOUNCE_MS)
    assert await scheduler.run_once() == []  # released: nothing left on the schedule


async def test_an_override_waits_while_a_scheduler_extracts_the_deferred_turns(
    database: Database, fake_llm: FakeLLMServer, owner_pool: asyncpg.Pool
) -> None:
    """Another worker's scheduler holds the conversation: the override's batch comes again
    (a transient error) rather than overtake the turns; once the claim ends, it applies."""
    clock = Clock()
    service = debounced_service(database, fake_llm, clock)
    turns = conversation_turns(uuid.uuid4(), "jane", 2)
    key = turns[0].key
    await service.process_batch(turns)
    clock.advance(milliseconds=DEBOUNCE_MS)
    assert service.debounce is not None
    await database.claim_due_extractions(
        now=clock(), debounce=service.debounce, lease=LEASE, claim=uuid.uuid4(), limit=1
    )
    override = override_of(key, after=turns[-1])
    with pytest.raises(DeferredExtractionBusy):
        await service.process_batch([override])
    assert await outbox_events(owner_pool, key) == []

    await expire_leases(owner_pool)  # that worker died
    outcome = await service.process_batch([override])
    assert (outcome.applied, outcome.overrides_applied) == (2, 1)
    events = await outbox_events(owner_pool, key)
    assert [e["source"] for e in events] == ["turns", "override"]


async def test_deferred_turns_are_read_back_with_the_workers_max_turn_chars(
    database: Database, fake_llm: FakeLLMServer, owner_pool: asyncpg.Pool
) -> None:
    """A 25,000-character turn accepted with MAX_TURN_CHARS=50000 is extracted, not re-claimed
    lease after lease; after MAX_TURN_CHARS is lowered below it, the row is dead-lettered from
    its stored form and leaves the schedule."""
    clock = Clock()
    service = debounced_service(database, fake_llm, clock, max_turn_chars=50_000)
    long_text = "We need SSO for our agents. " * 900  # 25,200 characters
    first, second = (
        ConversationTurn.model_validate(
            turn(uuid.uuid4(), "acme", "jane", 0, long_text), context={"max_turn_chars": 50_000}
        )
        for _ in range(2)
    )
    await service.process_batch([first])
    clock.advance(milliseconds=DEBOUNCE_MS)
    outcomes = await scheduler_for(service, clock).run_once()
    assert [(o.applied, o.version) for o in outcomes] == [(1, 1)]

    await service.process_batch([second])
    lowered = debounced_service(database, fake_llm, clock, max_turn_chars=20_000)
    clock.advance(milliseconds=DEBOUNCE_MS)
    assert [o.applied for o in await scheduler_for(lowered, clock).run_once()] == [0]
    [letter] = await dead_letters_in_outbox(owner_pool)
    assert letter["error"] == "invalid_event" and "no longer valid" in letter["detail"]
    assert letter["topic"] == "conversation.turn" and letter["offset"] == -1
    assert (
        ConversationTurn.model_validate_json(letter["value"], context={"max_turn_chars": 50_000})
        == second
    )
    assert await deferred_rows(owner_pool) == 0
    clock.advance(seconds=LEASE.total_seconds() + 1)
    assert await scheduler_for(lowered, clock).run_once() == []  # not claimed again


async def test_deferred_turns_the_database_refuses_are_dead_lettered_and_the_rest_extracted(
    database: Database, fake_llm: FakeLLMServer, owner_pool: asyncpg.Pool
) -> None:
    await owner_pool.execute(
        "ALTER TABLE tenant.conversation_turns"
        " ADD CONSTRAINT test_refuses CHECK (text <> 'refused')"
    )
    clock = Clock()
    service = debounced_service(database, fake_llm, clock)
    tenant = uuid.uuid4()
    turns = [
        ConversationTurn.model_validate(turn(tenant, "acme", "jane", i, text))
        for i, text in enumerate(["We need SSO.", "refused", "Budget is 50k."])
    ]
    await service.process_batch(turns)
    clock.advance(milliseconds=DEBOUNCE_MS)
    [outcome] = await scheduler_for(service, clock).run_once()

    assert (outcome.applied, outcome.version) == (2, 1)
    [letter] = await dead_letters_in_outbox(owner_pool)
    assert letter["error"] == "invalid_event"
    assert letter["detail"].startswith("rejected by PostgreSQL: CheckViolationError")
    assert orjson.loads(letter["value"])["event_id"] == str(turns[1].event_id)
    assert await count_turns(database, turns[0].key) == (2, 0)
    assert await deferred_rows(owner_pool) == 0


async def test_a_conflict_found_when_deferred_turns_are_stored_is_dead_lettered(
    database: Database, fake_llm: FakeLLMServer, owner_pool: asyncpg.Pool
) -> None:
    """The id of a deferred turn is stored meanwhile with other content (here by a worker with
    no debounce): at the scheduler's insert it is a `conflict` dead letter, the rest applied."""
    clock = Clock()
    service = debounced_service(database, fake_llm, clock)
    turns = conversation_turns(uuid.uuid4(), "jane", 2)
    await service.process_batch(turns)
    other = ConversationTurn.model_validate(
        turns[1].model_dump(mode="json") | {"contact_id": "john", "text": "Other words."}
    )
    immediate = debounced_service(database, fake_llm, clock, extract_debounce_ms=0)
    assert (await immediate.process_batch([other])).applied == 1
    clock.advance(milliseconds=DEBOUNCE_MS)
    [outcome] = await scheduler_for(service, clock).run_once()

    assert outcome.applied == 1
    [letter] = await dead_letters_in_outbox(owner_pool)
    assert letter["error"] == "conflict"
    assert orjson.loads(letter["value"])["text"] == turns[1].text
    assert await deferred_rows(owner_pool) == 0


async def dead_letters_in_outbox(owner_pool: asyncpg.Pool) -> list[JsonObject]:
    rows = await owner_pool.fetch(
        "SELECT payload FROM tenant.outbox WHERE topic = 'conversation.turn.dlq' ORDER BY id"
    )
    return [dict(r["payload"]) for r in rows]
