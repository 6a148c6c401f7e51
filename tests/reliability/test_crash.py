"""Crash: SIGKILL at aimed and random moments; every turn still counts exactly once."""

from __future__ import annotations

import random

from tests.harness import TopicReader, Topics
from tests.reliability.support import (
    SEED,
    DatabaseProbe,
    Killer,
    QuotingLLM,
    Sent,
    Workers,
    Workload,
    describe_problems,
    distinct_updates,
    partial_state_problems,
    produce_tracked,
    settle,
    stored_above_committed,
    unstored_below_committed,
    verify_end_state,
    widen_write_transaction,
)

# Where the kills are aimed, one after each of the first rounds (see the test's docstring).
KILL_PLAN = [
    "extraction",
    "write_transaction",
    "after_state_commit",
    "random",
    "between_publish_and_mark",
    "extraction",
    "write_transaction",
    "after_state_commit",
    "random",
]


async def test_sigkill_at_any_moment_applies_every_turn_exactly_once(
    workers: Workers,
    llm: QuotingLLM,
    probe: DatabaseProbe,
    database_url: str,
    kafka_bootstrap_servers: str,
    topics: Topics,
) -> None:
    """2,000 turns over 200 conversations, produced in 10 rounds; after each of the first 9
    rounds the worker is SIGKILLed and restarted. How the kills are aimed:

    - `extraction`: the fake LLM holds every request 150 ms; the kill fires while one is in
      flight (`llm.in_flight > 0`), so an extraction is lost mid-call;
    - `write_transaction`: a trigger in the test database pauses each write transaction 50 ms
      at its outbox insert (turns, state and stage rows already written, no COMMIT yet); the
      kill fires while a worker backend is seen sleeping there in `pg_stat_activity`;
    - `after_state_commit`: the kill fires right after a new state version is seen committed;
      the batch's other conversations are still being extracted, so its offsets are not
      committed yet and the redelivery must recognise the stored turns;
    - `between_publish_and_mark`: a trigger set for this kill only pauses the outbox relay's
      mark of the rows it has just published (broker acknowledged, UPDATE not committed); the
      kill fires while the mark is seen paused, so those events are published again;
    - `random`: after a seeded random number (1..30) of further LLM requests.

    Each kill must prove it landed where it was aimed, observed from outside the worker (see
    `Killer`): an LLM request abandoned mid-call, a paused write or mark rolled back, stored
    turns left uncommitted in Kafka.

    Before aiming, each worker is let commit a seeded random number (0..60) of versions, so
    the kills spread over the run rather than all hitting the first batch after a restart.

    Right after each kill, no committed offset may cover an unstored turn and the stored
    state must be consistent; the end state must hold every invariant, events published
    twice included (some must have been read twice).
    """
    workload = Workload.generate(conversations=200, turns_per_conversation=10)
    await widen_write_transaction(database_url, 0.05)
    llm.latency_s = 0.15
    sent: list[Sent] = []

    async def stored_not_committed_past() -> int:
        stored = await stored_above_committed(
            database_url, kafka_bootstrap_servers, workers.group, topics.turns, sent
        )
        return len(stored)

    killer = Killer(
        llm=llm,
        probe=probe,
        rng=random.Random(SEED),
        stored_above_committed=stored_not_committed_past,
    )
    settings = {"BATCH_MAX_RECORDS": "100"}

    async with TopicReader(
        bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
    ) as updates:
        await killer.started()
        worker = workers.start(**settings)
        for number, round_turns in enumerate(workload.rounds):
            sent += await produce_tracked(kafka_bootstrap_servers, topics.turns, round_turns)
            if number < len(KILL_PLAN):
                await killer.kill_during(KILL_PLAN[number], worker)
                lost = await unstored_below_committed(
                    database_url, kafka_bootstrap_servers, workers.group, topics.turns, sent
                )
                assert lost == [], f"{len(lost)} turns committed past but not stored"
                assert (partial := await partial_state_problems(database_url)) == [], partial
                await killer.started()
                worker = workers.start(**settings)
            if number == len(KILL_PLAN) - 1:  # the kills are done: finish at full speed
                llm.latency_s = 0.0
                await probe.value("DROP TRIGGER reliability_pause ON tenant.outbox")
        await settle(probe, updates, expected_turns=len(workload.turns), within_s=240)
        problems = await verify_end_state(
            database_url, workload.turns, updates, expected_quotes=workload.expected_quotes()
        )

    print("\n".join(f"{landing.moment}: {landing.proof}" for landing in killer.landings))
    assert [landing.moment for landing in killer.landings] == KILL_PLAN
    assert killer.missed() == [], f"kills that left no proof of their moment: {killer.landings}"
    assert problems == [], describe_problems(problems)
    read_twice = sum(len(copies) - 1 for copies in distinct_updates(updates).values())
    assert read_twice > 0, "the relay kill between publish and mark republished nothing"
    redelivered = sum(line.get("duplicates", 0) for line in workers.events("batch_committed"))
    assert redelivered > 0, "no kill landed between a state commit and its offset commit"
    assert workers.secrets_in_logs(workload.turns, "sk-test-not-a-real-key") == []
