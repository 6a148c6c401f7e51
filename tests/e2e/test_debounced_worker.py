"""Debounced extraction end to end: `python -m worker run` with EXTRACT_DEBOUNCE_MS, a real
broker and PostgreSQL, the LLM faked over HTTP. The batch commits its offsets without an LLM
call; the extraction scheduler extracts each conversation once it is quiet."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable

from tests.e2e.test_worker_flow import committed_to_end
from tests.fakes.llm_server import FakeLLMServer, echo_extraction, request_text
from tests.harness import TopicReader, Topics, WorkerProcess, fetch, produce, turn
from tests.reliability.support import partial_state_problems, stop_worker
from tests.waiting import eventually

StartWorker = Callable[..., WorkerProcess]


async def deferred_count(database_url: str) -> int:
    rows = await fetch(database_url, "SELECT count(*) AS n FROM tenant.deferred_turns")
    return int(rows[0]["n"])


async def test_a_burst_of_five_turns_makes_one_llm_call_and_one_update(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    fake_llm.reply_builder = echo_extraction
    tenant = uuid.uuid4()
    burst = [
        turn(tenant, "acme", "jane", n, f"We need SSO for {n + 1}00 agents.") for n in range(5)
    ]
    # The debounce is long next to how fast the burst is consumed, so the five arrive within
    # one quiet window however the broker batches them.
    start_worker(EXTRACT_DEBOUNCE_MS="3000", EXTRACT_MAX_WAIT_MS="60000")
    async with TopicReader(
        bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
    ) as updates:
        await produce(kafka_bootstrap_servers, topics.turns, burst)
        await eventually(updates.count, lambda n: n >= 1, within_s=60, what="an update")
        await eventually(
            lambda: deferred_count(database_url), lambda n: n == 0, what="nothing deferred"
        )
        (event,) = updates.json_values()
    assert fake_llm.received == 1
    assert event["version"] == 1 and event["interaction_count"] == 5
    assert sorted(event["turn_event_ids"]) == sorted(t["event_id"] for t in burst)


async def test_a_worker_killed_between_ingest_and_extraction_loses_no_turn(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    """The first worker stores the turns as deferred and commits its offsets; its debounce is
    an hour, so it is SIGKILLed before any extraction. The turns are in no Kafka offset any
    more: only PostgreSQL has them, and the next worker (a short debounce) extracts them."""
    fake_llm.reply_builder = echo_extraction
    tenant = uuid.uuid4()
    sent = [
        turn(tenant, "acme", f"c{c}", n, f"Conversation {c} needs item {n}.")
        for c in range(6)
        for n in range(3)
    ]
    first = start_worker(EXTRACT_DEBOUNCE_MS="3600000", EXTRACT_MAX_WAIT_MS="3600000")
    await produce(kafka_bootstrap_servers, topics.turns, sent)
    group = f"group-{topics.turns}"
    await eventually(
        lambda: committed_to_end(kafka_bootstrap_servers, group, topics.turns),
        lambda done: done,
        within_s=60,
        what="offsets committed",
    )
    assert await deferred_count(database_url) == len(sent)
    first.kill()
    assert fake_llm.received == 0
    assert await partial_state_problems(database_url) == []

    start_worker(EXTRACT_DEBOUNCE_MS="200", EXTRACT_MAX_WAIT_MS="1000")
    await eventually(
        lambda: deferred_count(database_url), lambda n: n == 0, within_s=60, what="extracted"
    )
    states = await fetch(
        database_url,
        "SELECT interaction_count, version FROM tenant.conversation_states WHERE tenant_id = $1",
        tenant,
    )
    assert sorted((r["interaction_count"], r["version"]) for r in states) == [(3, 1)] * 6
    assert fake_llm.received == 6  # one call per conversation
    assert await partial_state_problems(database_url) == []
    outbox = await fetch(database_url, "SELECT payload FROM tenant.outbox")
    named = [t for r in outbox for t in json.loads(r["payload"])["turn_event_ids"]]
    assert sorted(named) == sorted(t["event_id"] for t in sent)


async def test_turns_deferred_before_the_debounce_was_set_back_to_0_are_extracted(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    """An operator turns debouncing off (EXTRACT_DEBOUNCE_MS=0) while turns still wait: the
    restarted worker's scheduler drains them, though its batches extract at once."""
    fake_llm.reply_builder = echo_extraction
    tenant = uuid.uuid4()
    sent = [
        turn(tenant, "acme", f"c{c}", n, f"Conversation {c} needs item {n}.")
        for c in range(3)
        for n in range(2)
    ]
    first = start_worker(EXTRACT_DEBOUNCE_MS="3600000", EXTRACT_MAX_WAIT_MS="3600000")
    await produce(kafka_bootstrap_servers, topics.turns, sent)
    await eventually(
        lambda: deferred_count(database_url), lambda n: n == len(sent), within_s=60, what="deferred"
    )
    assert await stop_worker(first) == 0
    assert fake_llm.received == 0

    start_worker(EXTRACT_DEBOUNCE_MS="0")
    await eventually(
        lambda: deferred_count(database_url), lambda n: n == 0, within_s=60, what="drained"
    )
    states = await fetch(
        database_url,
        "SELECT interaction_count, version FROM tenant.conversation_states WHERE tenant_id = $1",
        tenant,
    )
    assert sorted((r["interaction_count"], r["version"]) for r in states) == [(2, 1)] * 3
    assert await partial_state_problems(database_url) == []


def conversation_named(body: dict[str, object]) -> str | None:
    found = re.search(r"Conversation (c\d+) ", request_text(body))
    return found.group(1) if found else None


async def test_two_workers_never_extract_one_conversation_at_once(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    """Two worker processes share the partitions and the schedule; the fake LLM answers slowly
    and records, per conversation, the most requests it ever had in flight at once."""
    fake_llm.reply_builder = echo_extraction
    fake_llm.latency_s = 0.3
    fake_llm.request_key = conversation_named
    tenant = uuid.uuid4()
    sent = [
        turn(tenant, "acme", f"c{c}", n, f"Conversation c{c} needs item {n}.")
        for c in range(30)
        for n in range(3)
    ]
    for _ in range(2):
        start_worker(EXTRACT_DEBOUNCE_MS="300", EXTRACT_MAX_WAIT_MS="2000")
    await produce(kafka_bootstrap_servers, topics.turns, sent)
    await eventually(
        lambda: applied(database_url), lambda n: n == len(sent), within_s=90, what="all applied"
    )
    # A claim's deferred rows are deleted right after its version commits, in a second step.
    await eventually(
        lambda: deferred_count(database_url), lambda n: n == 0, within_s=30, what="released"
    )
    assert set(fake_llm.peak_in_flight) == {f"c{c}" for c in range(30)}
    assert set(fake_llm.peak_in_flight.values()) == {1}
    assert await partial_state_problems(database_url) == []


async def applied(database_url: str) -> int:
    rows = await fetch(
        database_url,
        "SELECT coalesce(sum(interaction_count), 0) AS n FROM tenant.conversation_states",
    )
    return int(rows[0]["n"])
