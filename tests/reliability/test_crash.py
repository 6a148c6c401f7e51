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
    partial_state_problems,
    produce_tracked,
    settle,
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
    """2,000 turns over 200 conversations, produced in 10 rounds; after each of the first 8
    rounds the worker is SIGKILLed and restarted. How the kills are aimed:

    - `extraction`: the fake LLM holds every request 150 ms; the kill fires while one is in
      flight (`llm.in_flight > 0`), so an extraction is lost mid-call;
    - `write_transaction`: a trigger in the test database pauses each write transaction 50 ms
      at its outbox insert (turns, state and stage rows already written, no COMMIT yet); the
      kill fires while a worker backend is seen sleeping there in `pg_stat_activity`;
    - `after_state_commit`: the kill fires right after a new state version is seen committed;
      the batch's other conversations are still being extracted, so its offsets are not
      committed yet and the redelivery must recognise the stored turns;
    - `random`: after a seeded random number (1..30) of further LLM requests.

    Before aiming, each worker is let commit a seeded random number (0..60) of versions, so
    the kills spread over the run rather than all hitting the first batch after a restart.

    The outbox relay is killed along the way too (between publish and mark, so some events
    are published twice). Right after each kill, no committed offset may cover an unstored
    turn and the stored state must be consistent; wherever the kills landed, the end state
    must hold every invariant.
    """
    workload = Workload.generate(conversations=200, turns_per_conversation=10)
    await widen_write_transaction(database_url, 0.05)
    llm.latency_s = 0.15
    killer = Killer(llm=llm, probe=probe, rng=random.Random(SEED))
    settings = {"BATCH_MAX_RECORDS": "100"}

    async with TopicReader(
        bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
    ) as updates:
        await killer.started()
        worker = workers.start(**settings)
        sent: list[Sent] = []
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

    assert killer.landed == KILL_PLAN
    assert problems == [], describe_problems(problems)
    redelivered = sum(line.get("duplicates", 0) for line in workers.events("batch_committed"))
    assert redelivered > 0, "no kill landed between a state commit and its offset commit"
    assert workers.secrets_in_logs(workload.turns, "sk-test-not-a-real-key") == []
