"""The worker end to end: real broker, real PostgreSQL, `python -m worker run` as a subprocess,
the LLM faked over HTTP (instructor + LiteLLM + HTTP all real)."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from schemas import ConversationKey, QualificationUpdated, update_event_id
from tests.fakes.llm_server import ErrorReply, FakeLLMServer, ToolCallReply
from tests.harness import (
    TopicReader,
    Topics,
    WorkerProcess,
    applied_turns,
    committed_to_end,
    fetch,
    produce,
    turn,
)
from tests.waiting import eventually

StartWorker = Callable[..., WorkerProcess]

BUDGET_EXTRACTION: dict[str, Any] = {
    "bant": {
        "budget_identified": True,
        "budget_confidence": 0.7,
        "budget_range": "$50k",
        "budget_evidence": ["of conversation"],  # in every turn below: it survives the check
    },
    "meddic": {},
    "overall_confidence": 0.4,
    "key_insights": ["has budget"],
    "recommended_next_questions": ["Who signs?"],
}


def prompt_text(request: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content") or "") for m in request.get("messages", []))


async def test_turns_become_states_and_gapless_versioned_events(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    fake_llm.reply_builder = lambda request: BUDGET_EXTRACTION
    tenants = [uuid.uuid4() for _ in range(3)]
    sent = [
        turn(tenant, f"acct-{c}", f"c-{c}", seq, f"turn {seq} of conversation {c}")
        for tenant in tenants
        for c in range(10)
        for seq in range(4)
    ]
    await produce(kafka_bootstrap_servers, topics.turns, sent)
    async with TopicReader(
        bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
    ) as updates:
        worker = start_worker()
        await eventually(lambda: applied_turns(database_url), lambda n: n == 120, what="120 turns")
        states = await fetch(database_url, "SELECT * FROM tenant.conversation_states")
        total_versions = sum(row["version"] for row in states)
        await eventually(updates.count, lambda n: n >= total_versions, what="all update events")
        assert worker.stop() == 0, "SIGTERM must stop the worker cleanly"

    assert len(states) == 30
    assert all(row["interaction_count"] == 4 for row in states)
    assert all(
        row["qualification_data"] and '"budget_identified": true' in row["qualification_data"]
        for row in states
    )
    versions: dict[str, set[int]] = defaultdict(set)
    for key, value, headers in updates.records:
        event = QualificationUpdated.model_validate_json(value)
        conversation = ConversationKey(event.tenant_id, event.account_id, event.contact_id)
        assert key == str(conversation).encode()
        assert headers["event_id"] == str(event.event_id).encode()
        assert event.event_id == update_event_id(conversation, event.version)
        versions[str(conversation)].add(event.version)
    for row in states:
        conversation = f"{row['tenant_id']}:{row['account_id']}:{row['contact_id']}"
        assert versions[conversation] == set(range(1, row["version"] + 1))


async def test_one_extraction_call_for_ten_turns_of_one_conversation(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    tenant = uuid.uuid4()
    texts = [f"distinct line number {i} about our rollout" for i in range(10)]
    await produce(
        kafka_bootstrap_servers,
        topics.turns,
        [turn(tenant, "acme", "jane", i, text) for i, text in enumerate(texts)],
    )
    start_worker()
    await eventually(lambda: applied_turns(database_url), lambda n: n == 10, what="10 turns")

    assert fake_llm.received == 1
    prompt = prompt_text(fake_llm.requests[0])
    assert all(text in prompt for text in texts)


async def test_redelivered_turns_change_nothing(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    tenant = uuid.uuid4()
    sent = [turn(tenant, f"acct-{c}", "c", s, f"message {s}") for c in range(10) for s in range(10)]
    group = f"group-{topics.turns}"
    async with TopicReader(
        bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
    ) as updates:
        await produce(kafka_bootstrap_servers, topics.turns, sent)
        start_worker()
        await eventually(lambda: applied_turns(database_url), lambda n: n == 100, what="100 turns")
        await eventually(lambda: unpublished(database_url), lambda n: n == 0, what="outbox drained")
        before = await snapshot(database_url)
        await eventually(updates.count, lambda n: n == before["events"], what="events")
        calls_before = fake_llm.received

        await produce(kafka_bootstrap_servers, topics.turns, sent)  # the same event_ids again
        await eventually(
            lambda: committed_to_end(kafka_bootstrap_servers, group, topics.turns),
            bool,
            what="the replay consumed and committed",
        )
        after = await snapshot(database_url)

    assert after == before
    assert fake_llm.received == calls_before
    assert len(updates.records) == before["events"]


async def unpublished(database_url: str) -> int:
    rows = await fetch(
        database_url, "SELECT count(*) AS n FROM tenant.outbox WHERE published_at IS NULL"
    )
    return int(rows[0]["n"])


async def snapshot(database_url: str) -> dict[str, Any]:
    states = await fetch(
        database_url,
        "SELECT account_id, contact_id, interaction_count, version FROM tenant.conversation_states"
        " ORDER BY account_id",
    )
    events = await fetch(database_url, "SELECT count(*) AS n FROM tenant.outbox")
    turns = await fetch(database_url, "SELECT count(*) AS n FROM tenant.conversation_turns")
    return {"states": [dict(r) for r in states], "events": events[0]["n"], "turns": turns[0]["n"]}


def stage_reply(stage: str) -> ToolCallReply:
    return ToolCallReply(
        arguments={
            **BUDGET_EXTRACTION,
            "suggested_stage": stage,
            "stage_reason": f"the prospect talks like {stage}",
        }
    )


async def test_skipping_stage_is_rejected_and_valid_one_applied(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    tenant = uuid.uuid4()
    fake_llm.script(stage_reply("negotiation"), stage_reply("discovery"))
    start_worker()
    await produce(kafka_bootstrap_servers, topics.turns, [turn(tenant, "acme", "jane", 0, "hi")])
    await eventually(lambda: applied_turns(database_url), lambda n: n == 1, what="first turn")
    await produce(kafka_bootstrap_servers, topics.turns, [turn(tenant, "acme", "jane", 1, "next")])
    await eventually(lambda: applied_turns(database_url), lambda n: n == 2, what="second turn")

    transitions = await fetch(
        database_url,
        "SELECT from_stage, to_stage, accepted, reason FROM tenant.stage_transitions ORDER BY id",
    )
    assert [(t["from_stage"], t["to_stage"], t["accepted"]) for t in transitions] == [
        ("prospecting", "negotiation", False),
        ("prospecting", "discovery", True),
    ]
    assert "skip" in transitions[0]["reason"]
    state = await fetch(database_url, "SELECT deal_stage FROM tenant.conversation_states")
    assert state[0]["deal_stage"] == "discovery"


async def test_bad_records_are_dead_lettered_and_good_ones_applied(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
) -> None:
    tenant = uuid.uuid4()
    good = [turn(tenant, "acme", f"c{i}", 0, f"good turn {i}") for i in range(6)]
    missing_field = turn(tenant, "acme", "bad", 0, "no email")
    del missing_field["contact_email"]
    bad: list[tuple[bytes | None, bytes]] = [
        (b"k1", b'{"event_id": "not closed'),
        (b"k2", json.dumps(missing_field).encode()),
        (b"k3", json.dumps(turn(tenant, "acme", "big", 0, "x" * 101)).encode()),
        (None, b"\xff\xfe\x00binary"),
    ]
    interleaved: list[Any] = [
        good[0],
        bad[0],
        good[1],
        bad[1],
        good[2],
        bad[2],
        good[3],
        bad[3],
        good[4],
        good[5],
    ]
    await produce(kafka_bootstrap_servers, topics.turns, interleaved)
    async with TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.dlq) as dlq:
        start_worker(MAX_TURN_CHARS="100")
        await eventually(dlq.count, lambda n: n == 4, what="4 dead letters")
        await eventually(lambda: applied_turns(database_url), lambda n: n == 6, what="6 good turns")

    letters = dlq.json_values()  # offsets repeat across partitions: match on content instead

    def letter_where(condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        matches = [letter for letter in letters if condition(letter)]
        assert len(matches) == 1, letters
        return matches[0]

    assert letter_where(lambda v: v["key"] == "k1")["error"] == "invalid_json"
    missing = letter_where(lambda v: v["key"] == "k2")
    assert missing["error"] == "invalid_event" and "contact_email" in missing["detail"]
    assert letter_where(lambda v: v["key"] == "k3")["error"] == "too_large"
    binary = letter_where(lambda v: v["value_encoding"] == "base64")
    assert binary["error"] == "invalid_json" and binary["key"] is None
    assert all(letter["topic"] == topics.turns for letter in letters)


async def test_llm_outage_leaves_turns_pending_until_the_next_extraction(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    tenant = uuid.uuid4()
    texts = ["first while down", "second while down", "third while down", "after recovery"]
    fake_llm.reply_builder = lambda request: ErrorReply(status=500)
    async with TopicReader(
        bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
    ) as updates:
        start_worker()
        await produce(
            kafka_bootstrap_servers,
            topics.turns,
            [turn(tenant, "acme", "jane", i, texts[i]) for i in range(3)],
        )
        await eventually(lambda: applied_turns(database_url), lambda n: n == 3, what="3 turns")
        pending = await fetch(
            database_url,
            "SELECT count(*) AS n FROM tenant.conversation_turns WHERE extracted_at IS NULL",
        )
        assert pending[0]["n"] == 3

        fake_llm.reply_builder = lambda request: BUDGET_EXTRACTION
        await produce(
            kafka_bootstrap_servers, topics.turns, [turn(tenant, "acme", "jane", 3, texts[3])]
        )
        await eventually(lambda: applied_turns(database_url), lambda n: n == 4, what="4th turn")
        states = await fetch(database_url, "SELECT version FROM tenant.conversation_states")
        await eventually(updates.count, lambda n: n == states[0]["version"], what="events")

    pending = await fetch(
        database_url,
        "SELECT count(*) AS n FROM tenant.conversation_turns WHERE extracted_at IS NULL",
    )
    assert pending[0]["n"] == 0
    statuses = [event["extraction"]["status"] for event in updates.json_values()]
    assert statuses[0] == "failed" and statuses[-1] == "ok"
    assert all(text in prompt_text(fake_llm.requests[-1]) for text in texts)
