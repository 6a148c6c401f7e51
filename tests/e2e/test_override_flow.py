"""People's overrides end to end (issue 11): published as QualificationOverride JSON on the
overrides topic, consumed by `python -m worker run` with the turns, against a real broker and
PostgreSQL, the LLM faked over HTTP (instructor + LiteLLM + HTTP all real)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from schemas import ConversationKey
from tests.fakes.llm_server import EMPTY_EXTRACTION, FakeLLMServer, ToolCallReply
from tests.harness import (
    BASE_TIME,
    TopicReader,
    Topics,
    WorkerProcess,
    committed_to_end,
    fetch,
    produce,
    turn,
)
from tests.waiting import eventually

StartWorker = Callable[..., WorkerProcess]
JsonObject = dict[str, Any]

USER = {"type": "user", "id": "ann"}
MANAGER = {"type": "user", "id": "mia"}


def override(
    key: ConversationKey,
    *,
    actor: JsonObject = USER,
    after_turn: int = 0,
    event_id: uuid.UUID | None = None,
    **action: Any,
) -> JsonObject:
    """A QualificationOverride payload, said to happen half a minute after turn `after_turn`
    (`turn` puts turn n at BASE_TIME + n minutes)."""
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "tenant_id": str(key.tenant_id),
        "account_id": key.account_id,
        "contact_id": key.contact_id,
        "actor": actor,
        "occurred_at": (BASE_TIME + timedelta(minutes=after_turn, seconds=30)).isoformat(),
        **action,
    }


def turn_of(key: ConversationKey, sequence: int, text: str) -> JsonObject:
    return turn(key.tenant_id, key.account_id, key.contact_id, sequence, text)


def budget_reply(amount: str, confidence: float) -> ToolCallReply:
    return ToolCallReply(
        arguments={
            **EMPTY_EXTRACTION,
            "bant": {
                "budget_identified": True,
                "budget_confidence": confidence,
                "budget_range": amount,
                "budget_evidence": [f"Our budget is {amount}."],
            },
            "overall_confidence": 0.5,
        }
    )


def stage_reply(stage: str) -> ToolCallReply:
    return ToolCallReply(
        arguments={
            **EMPTY_EXTRACTION,
            "suggested_stage": stage,
            "stage_reason": f"the prospect talks like {stage}",
        }
    )


async def state_of(database_url: str, key: ConversationKey) -> JsonObject:
    rows = await fetch(
        database_url,
        "SELECT * FROM tenant.conversation_states"
        " WHERE tenant_id = $1 AND account_id = $2 AND contact_id = $3",
        *key,
    )
    if not rows:
        return {"version": 0}
    state = dict(rows[0])
    for column in ("qualification_data", "owners", "suggestions"):
        if isinstance(state[column], str):
            state[column] = json.loads(state[column])
    return state


async def state_at(database_url: str, key: ConversationKey, version: int) -> JsonObject:
    """The state once it has reached `version` (it must not go further: nothing else is sent)."""
    state = await eventually(
        lambda: state_of(database_url, key),
        lambda s: s["version"] >= version,
        what=f"version {version}",
    )
    assert state["version"] == version, f"expected v{version}, got v{state['version']}"
    return state


async def events_by_version(updates: TopicReader, versions: int) -> dict[int, JsonObject]:
    """The update events of one conversation (the only one a test reads), v1..`versions`."""

    async def read() -> dict[int, JsonObject]:
        return {event["version"]: event for event in updates.json_values()}

    events = await eventually(
        read, lambda found: set(range(1, versions + 1)) <= set(found), what=f"{versions} events"
    )
    return events


def budget_of(qualification: JsonObject) -> str | None:
    value: str | None = qualification["bant"]["budget_range"]
    return value


async def test_a_users_budget_outlives_confident_extractions_as_suggestions_until_unlocked(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    """`set budget` by a user; three batches whose model reports another budget with more
    confidence leave the user's value, each AI view is `suggestions.budget` of the state and
    of the event; after `unlock`, the next extraction (as confident as the user) changes it."""
    key = ConversationKey(uuid.uuid4(), "acme", "jane")
    ai_budgets = ["$60k", "$70k", "$80k"]
    fake_llm.script(
        budget_reply("$50k", 0.7),
        *(budget_reply(amount, 0.95) for amount in ai_budgets),
        budget_reply("$100k", 0.8),
    )
    async with TopicReader(
        bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
    ) as updates:
        start_worker()
        await produce(
            kafka_bootstrap_servers, topics.turns, [turn_of(key, 0, "Our budget is $50k.")]
        )
        assert budget_of((await state_at(database_url, key, 1))["qualification_data"]) == "$50k"

        set_budget = {"budget": {"budget_range": "$90k", "confidence": 0.8}}
        await produce(kafka_bootstrap_servers, topics.overrides, [override(key, set=set_budget)])
        state = await state_at(database_url, key, 2)
        assert budget_of(state["qualification_data"]) == "$90k"
        assert state["owners"]["budget"]["actor"] == USER

        for sequence, amount in enumerate(ai_budgets, start=1):
            await produce(
                kafka_bootstrap_servers,
                topics.turns,
                [turn_of(key, sequence, f"Our budget is {amount}.")],
            )
            version = 2 + sequence
            state = await state_at(database_url, key, version)
            event = (await events_by_version(updates, version))[version]
            for seen in (state["qualification_data"], event["qualification"]):
                assert budget_of(seen) == "$90k", f"v{version}: the AI changed the user's budget"
            for suggestions in (state["suggestions"], event["suggestions"]):
                suggestion = suggestions["budget"]
                assert suggestion["values"] == {"budget_range": amount}
                assert suggestion["confidence"] == 0.95
                assert suggestion["evidence"] == [f"Our budget is {amount}."]
                assert suggestion["version"] == version
            assert event["source"] == "turns" and "suggestions.budget" in event["changed_fields"]

        unlock = override(key, after_turn=3, unlock=["budget"])
        await produce(kafka_bootstrap_servers, topics.overrides, [unlock])
        state = await state_at(database_url, key, 6)
        assert budget_of(state["qualification_data"]) == "$90k", "unlock applies nothing itself"
        assert state["owners"] == {} and state["suggestions"] == {}

        await produce(
            kafka_bootstrap_servers, topics.turns, [turn_of(key, 4, "Our budget is $100k.")]
        )
        state = await state_at(database_url, key, 7)
        event = (await events_by_version(updates, 7))[7]

    assert budget_of(state["qualification_data"]) == "$100k"
    assert budget_of(event["qualification"]) == "$100k" and event["suggestions"] == {}
    assert fake_llm.received == 5


async def test_a_person_moves_a_deal_where_the_ai_may_not_and_the_ai_goes_on_from_there(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    """prospecting -> evaluation skips two stages: refused to the AI, applied for a person
    (recorded with the actor and source override); the AI's next proposal, negotiation, is
    judged from evaluation (from prospecting it would be a skip). Exit criteria are off so the
    stage machine alone judges the AI."""
    key = ConversationKey(uuid.uuid4(), "acme", "jane")
    fake_llm.script(stage_reply("evaluation"), stage_reply("negotiation"))
    async with TopicReader(
        bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
    ) as updates:
        start_worker(STAGE_CRITERIA="off")
        await produce(kafka_bootstrap_servers, topics.turns, [turn_of(key, 0, "Let us evaluate.")])
        assert (await state_at(database_url, key, 1))["deal_stage"] == "prospecting"

        move = {"to": "evaluation", "reason": "the pilot started after a call"}
        await produce(
            kafka_bootstrap_servers, topics.overrides, [override(key, actor=MANAGER, stage=move)]
        )
        assert (await state_at(database_url, key, 2))["deal_stage"] == "evaluation"

        await produce(kafka_bootstrap_servers, topics.turns, [turn_of(key, 1, "Terms next.")])
        assert (await state_at(database_url, key, 3))["deal_stage"] == "negotiation"
        events = await events_by_version(updates, 3)

    transitions = await fetch(
        database_url,
        "SELECT version, from_stage, to_stage, accepted, reason, source, actor"
        " FROM tenant.stage_transitions ORDER BY id",
    )
    recorded = [
        (
            t["version"],
            t["from_stage"],
            t["to_stage"],
            t["accepted"],
            t["source"],
            json.loads(t["actor"]) if t["actor"] else None,
        )
        for t in transitions
    ]
    assert recorded == [
        (1, "prospecting", "evaluation", False, "turns", None),
        (2, "prospecting", "evaluation", True, "override", MANAGER),
        (3, "evaluation", "negotiation", True, "turns", None),
    ]
    assert "skip" in transitions[0]["reason"]
    assert transitions[1]["reason"] == move["reason"]
    by_person = events[2]
    assert by_person["source"] == "override" and by_person["actor"] == MANAGER
    assert by_person["stage_change"]["to"] == "evaluation"
    assert by_person["stage_change"]["accepted"] is True
    assert by_person["previous_stage"] == "prospecting" and by_person["extraction"] is None
    assert events[3]["previous_stage"] == "evaluation"


async def test_turns_and_an_override_of_one_batch_apply_in_order_and_a_redelivery_counts_once(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
) -> None:
    """Turn 0, an override half a minute later (twice: redelivered within the batch) and turn
    1 are all on the topics before the worker starts, so they come in one batch: the versions
    are turns, override, turns. The same override published again afterwards changes nothing
    and is no dead letter."""
    key = ConversationKey(uuid.uuid4(), "acme", "jane")
    first, second = turn_of(key, 0, "Hello there."), turn_of(key, 1, "We need reporting.")
    correction = override(key, after_turn=0, set={"budget": {"budget_range": "$90k"}})
    await produce(kafka_bootstrap_servers, topics.turns, [first, second])
    await produce(kafka_bootstrap_servers, topics.overrides, [correction, correction])
    group = f"group-{topics.turns}"
    async with (
        TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates) as updates,
        TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.dlq) as dlq,
    ):
        worker = start_worker()
        await state_at(database_url, key, 3)
        events = await events_by_version(updates, 3)

        await produce(kafka_bootstrap_servers, topics.overrides, [correction])  # redelivered
        await consumed_and_committed(kafka_bootstrap_servers, group, topics.overrides)
        state = await state_of(database_url, key)
        dead_letters = dlq.json_values()

    assert [
        (events[v]["source"], events[v]["turn_event_ids"], events[v]["actor"]) for v in (1, 2, 3)
    ] == [
        ("turns", [first["event_id"]], None),
        ("override", [], USER),
        ("turns", [second["event_id"]], None),
    ]
    assert budget_of(events[2]["qualification"]) == "$90k"
    batches = [line for line in log_lines(worker) if line.get("event") == "batch_committed"]
    assert any(b["turns"] == 2 and b["overrides"] == 2 for b in batches), batches
    assert state["version"] == 3 and state["interaction_count"] == 2
    applied = await fetch(database_url, "SELECT event_id, version FROM tenant.overrides")
    assert [(str(r["event_id"]), r["version"]) for r in applied] == [(correction["event_id"], 2)]
    assert sum(b["overrides_applied"] for b in batches) == 1
    assert sum(b["duplicates"] for b in batches) >= 1, "the later copy was seen as a duplicate"
    assert dead_letters == []


async def consumed_and_committed(bootstrap_servers: str, group: str, topic: str) -> None:
    async def reached_the_end() -> bool:
        return await committed_to_end(bootstrap_servers, group, topic)

    await eventually(reached_the_end, bool, what=f"{topic} consumed and committed")


def log_lines(worker: WorkerProcess) -> list[JsonObject]:
    lines = []
    for line in worker.log_text().splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


async def test_each_bad_override_is_dead_lettered_with_its_reason_and_good_ones_around_it_apply(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
) -> None:
    key = ConversationKey(uuid.uuid4(), "acme", "jane")
    take_authority = override(key, lock=["authority"])
    good = [
        take_authority,
        override(key, set={"budget": {"budget_range": "$90k"}}),
        override(key, stage={"to": "discovery", "reason": "first call held"}),
        override(key, unlock=["authority"]),
    ]
    bad = {
        "unknown dimension": override(key, set={"budgett": {"budget_range": "$1"}}),
        "unknown value field": override(key, set={"budget": {"budget_rnage": "$1"}}),
        "wrong type": override(key, set={"budget": {"confidence": "very"}}),
        "empty": override(key),
        "not a stage": override(key, stage={"to": "won", "reason": "they signed"}),
        "unknown conversation": override(
            ConversationKey(key.tenant_id, "acme", "nobody"), lock=["need"]
        ),
        "reused event_id": override(
            key, event_id=uuid.UUID(take_authority["event_id"]), lock=["champion"]
        ),
    }
    expected = {
        "unknown dimension": ("invalid_event", "budgett"),
        "unknown value field": ("invalid_event", "budget_rnage"),
        "wrong type": ("invalid_event", "confidence"),
        "empty": ("invalid_event", "nothing to do"),
        "not a stage": ("invalid_event", "stage.to"),
        "unknown conversation": ("unknown_conversation", "no such conversation"),
        "reused event_id": ("conflict", "event_id already used by an override"),
    }
    bad_records = list(bad.values())
    interleaved = [
        good[0],
        bad_records[0],
        bad_records[1],
        good[1],
        bad_records[2],
        bad_records[3],
        good[2],
        bad_records[4],
        bad_records[5],
        bad_records[6],
        good[3],
    ]
    group = f"group-{topics.turns}"
    async with TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.dlq) as dlq:
        start_worker()
        await produce(kafka_bootstrap_servers, topics.turns, [turn_of(key, 0, "Hello there.")])
        await state_at(database_url, key, 1)
        await produce(kafka_bootstrap_servers, topics.overrides, interleaved)
        await produce(kafka_bootstrap_servers, topics.turns, [turn_of(key, 1, "Any news?")])
        state = await state_at(database_url, key, 1 + len(good) + 1)
        await eventually(dlq.count, lambda n: n >= len(bad), what=f"{len(bad)} dead letters")
        for topic in (topics.turns, topics.overrides):
            await consumed_and_committed(kafka_bootstrap_servers, group, topic)
        letters = dlq.json_values()

    assert len(letters) == len(bad), letters
    by_event_id: dict[str, list[JsonObject]] = {}
    for letter in letters:
        assert letter["topic"] == topics.overrides
        by_event_id.setdefault(json.loads(letter["value"])["event_id"], []).append(letter)
    for case, payload in bad.items():
        reason, words = expected[case]
        [letter] = [
            letter
            for letter in by_event_id[payload["event_id"]]
            if json.loads(letter["value"]) == payload
        ]
        assert letter["error"] == reason, (case, letter)
        assert words in letter["detail"], (case, letter["detail"])

    applied = await fetch(database_url, "SELECT event_id FROM tenant.overrides ORDER BY version")
    assert [str(r["event_id"]) for r in applied] == [o["event_id"] for o in good]
    assert state["interaction_count"] == 2
    assert budget_of(state["qualification_data"]) == "$90k"
    assert state["deal_stage"] == "discovery"
    assert set(state["owners"]) == {"budget"}, "authority was unlocked, budget stays set"
    nobody = await fetch(
        database_url, "SELECT 1 FROM tenant.conversation_states WHERE contact_id = 'nobody'"
    )
    assert nobody == [], "an override creates no conversation"
