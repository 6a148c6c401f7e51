"""A conversation's turns and overrides meet in one worker, in order: three workers in one group
over co-partitioned topics, overrides interleaved with turns, a worker added and one SIGKILLed
mid-run."""

from __future__ import annotations

import functools
import json
import operator
import signal
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest_asyncio

from devtools.stack import free_port
from tests.harness import TopicReader, Topics, produce
from tests.reliability.support import (
    DatabaseProbe,
    JsonObject,
    QuotingLLM,
    Workers,
    Workload,
    assigned_partitions,
    conversation_of,
    describe_problems,
    override_of,
    settle,
    stop_worker,
    verify_end_state,
)
from tests.waiting import eventually

# Not a multiple of three members nor of two: aiokafka's default round-robin would then give
# partition i of the two topics to different members, with three workers and after the kill.
PARTITIONS = 5
CONVERSATIONS = 40
ROUNDS = 7
CORRECTED = range(0, CONVERSATIONS, 4)  # every 4th conversation gets the three overrides
OVERRIDE_AFTER = {1: 0, 3: 1, 5: 2}  # after round r, override number n of each corrected one


@pytest_asyncio.fixture
async def topics(kafka_bootstrap_servers: str) -> Topics:
    created = Topics.unique()
    await created.create(kafka_bootstrap_servers, partitions=PARTITIONS)
    return created


async def order_problems(
    database_url: str, overrides: Sequence[tuple[JsonObject, int]]
) -> list[str]:
    """Each (override, after_turn): the version it made comes after the versions that applied
    the conversation's turns 0..after_turn, and before those that applied the later ones."""
    conn = await asyncpg.connect(database_url)
    try:
        made = {
            str(r["event_id"]): r["version"]
            for r in await conn.fetch("SELECT event_id, version FROM tenant.overrides")
        }
        outbox = await conn.fetch("SELECT payload FROM tenant.outbox")
        turn_sequences = {
            str(r["event_id"]): r["sequence"]
            for r in await conn.fetch("SELECT event_id, sequence FROM tenant.conversation_turns")
        }
    finally:
        await conn.close()
    version_of_turn: dict[Any, dict[int, int]] = {}
    for row in outbox:
        payload = json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
        for event_id in payload["turn_event_ids"]:
            sequences = version_of_turn.setdefault(conversation_of(payload), {})
            sequences[turn_sequences[event_id]] = payload["version"]
    problems = []
    for override, after_turn in overrides:
        key = conversation_of(override)
        version = made.get(override["event_id"])
        if version is None:
            problems.append(f"{key}: override after turn {after_turn} not applied")
            continue
        for sequence, turn_version in sorted(version_of_turn.get(key, {}).items()):
            if (sequence <= after_turn) != (turn_version < version):
                problems.append(
                    f"{key}: the override after turn {after_turn} is v{version}, "
                    f"turn {sequence} is v{turn_version}"
                )
    return problems


async def test_three_workers_apply_each_override_between_the_turns_around_it(
    workers: Workers,
    llm: QuotingLLM,
    probe: DatabaseProbe,
    database_url: str,
    kafka_bootstrap_servers: str,
    topics: Topics,
) -> None:
    """280 turns of 40 conversations in 7 rounds on 5 partitions per topic; 30 overrides of 10
    conversations. Each override is published once the turns of its round are applied, and the
    next round's turns right after it (without waiting): whoever reads the override also reads
    those turns and must apply the override first. Two workers start; a third joins after
    round 1 (rebalance); one of the first two is SIGKILLed once round 4's turns (which follow
    round 3's overrides) are out, with an extraction in flight (rebalance, redelivery). Then:
    every override's version lies between the versions of the turns before and after it, and
    the crash test's end-state check holds."""
    workload = Workload.generate(conversations=CONVERSATIONS, turns_per_conversation=ROUNDS)
    llm.latency_s = 0.05
    sent: list[tuple[JsonObject, int]] = []

    async with TopicReader(
        bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
    ) as updates:
        first, second = workers.start(), workers.start()
        for round_ in range(ROUNDS):
            await produce(kafka_bootstrap_servers, topics.turns, workload.rounds[round_])
            if round_ == 1:
                third_port = free_port()
                workers.start(HTTP_PORT=str(third_port))
                await eventually(
                    functools.partial(assigned_partitions, third_port),
                    lambda n: n > 0,
                    within_s=60,
                    interval=0.2,
                    what="partitions for the third worker",
                )
            if round_ == 4:
                await llm.call_in_flight(since=llm.received)
                assert await stop_worker(second, signal.SIGKILL) == -signal.SIGKILL
            number = OVERRIDE_AFTER.get(round_)
            if number is None:
                continue
            round_applied = functools.partial(operator.le, CONVERSATIONS * (round_ + 1))
            await eventually(probe.applied, round_applied, within_s=90, what="the round")
            batch = [
                override_of(workload.conversations[i], number, after_turn=round_) for i in CORRECTED
            ]
            await produce(kafka_bootstrap_servers, topics.overrides, batch)
            sent += [(override, round_) for override in batch]
        await settle(
            probe,
            updates,
            expected_turns=len(workload.turns),
            expected_overrides=len(sent),
            within_s=180,
        )
        problems = await verify_end_state(
            database_url,
            workload.turns,
            updates,
            expected_quotes=workload.expected_quotes(),
            overrides=[override for override, _ in sent],
        )
        problems += await order_problems(database_url, sent)

    assert problems == [], describe_problems(problems)
    assert await stop_worker(first) == 0
