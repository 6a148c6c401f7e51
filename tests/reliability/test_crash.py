"""Crash: SIGKILL at aimed and random moments; every turn still counts exactly once, and every
person's override is applied exactly once."""

from __future__ import annotations

import random

from tests.harness import TopicReader, Topics
from tests.reliability.support import (
    SEED,
    DatabaseProbe,
    Killer,
    OverrideSchedule,
    QuotingLLM,
    Sent,
    Workers,
    Workload,
    conversations_with_state,
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
from tests.waiting import eventually

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


async def test_sigkill_at_any_moment_applies_every_turn_and_override_exactly_once(
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

    People correct every 7th conversation meanwhile (`OverrideSchedule`): a lock after round
    1, a budget set after round 4, a stage move the machine would refuse the AI after round 7,
    each published once the conversation's first turn is stored (an override of an unknown
    conversation is dead-lettered, which is not this test's subject), interleaved with the
    next round's turns; the first three are published again a round later (redeliveries).

    Each kill must prove it landed where it was aimed, observed from outside the worker (see
    `Killer`): an LLM request abandoned mid-call, a paused write or mark rolled back, stored
    turns left uncommitted in Kafka.

    Before aiming, each worker is let commit a seeded random number (0..60) of versions, so
    the kills spread over the run rather than all hitting the first batch after a restart.

    Right after each kill, no committed offset may cover an unstored turn or an unapplied
    override, and the stored state must be consistent (no version without its event, no
    applied override without its override version); the end state must hold every invariant,
    events published twice included (some must have been read twice), each override applied
    exactly once, and nothing dead-lettered.
    """
    workload = Workload.generate(conversations=200, turns_per_conversation=10)
    schedule = OverrideSchedule(workload=workload)
    await widen_write_transaction(database_url, 0.05)
    llm.latency_s = 0.15
    sent: list[Sent] = []
    sent_overrides: list[Sent] = []

    killer = killer_for(llm, probe, workers, topics, database_url, kafka_bootstrap_servers, sent)
    settings = {"BATCH_MAX_RECORDS": "100"}

    async def publish_overrides_due(after_round: int) -> None:
        stored = await conversations_with_state(database_url)
        due = schedule.due_after(after_round, stored)
        sent_overrides.extend(await produce_tracked(kafka_bootstrap_servers, topics.overrides, due))

    async with (
        TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates) as updates,
        TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.dlq) as dlq,
    ):
        await killer.started()
        worker = workers.start(**settings)
        for number, round_turns in enumerate(workload.rounds):
            sent += await produce_tracked(kafka_bootstrap_servers, topics.turns, round_turns)
            await publish_overrides_due(number)
            if number < len(KILL_PLAN):
                await killer.kill_during(KILL_PLAN[number], worker)
                lost = await unstored_below_committed(
                    database_url, kafka_bootstrap_servers, workers.group, topics.turns, sent
                )
                assert lost == [], f"{len(lost)} turns committed past but not stored"
                lost = await unstored_below_committed(
                    database_url,
                    kafka_bootstrap_servers,
                    workers.group,
                    topics.overrides,
                    sent_overrides,
                    stored_in=("tenant.overrides",),
                )
                assert lost == [], f"{len(lost)} overrides committed past but not applied"
                assert (partial := await partial_state_problems(database_url)) == [], partial
                await killer.started()
                worker = workers.start(**settings)
            if number == len(KILL_PLAN) - 1:  # the kills are done: finish at full speed
                llm.latency_s = 0.0
                await probe.value("DROP TRIGGER reliability_pause ON tenant.outbox")
        await eventually(
            lambda: conversations_with_state(database_url),
            lambda stored: stored >= set(schedule.corrected),
            within_s=120,
            what="every corrected conversation stored",
        )
        await publish_overrides_due(len(workload.rounds))  # those deferred so far, if any
        assert schedule.unpublished == []
        await settle(
            probe,
            updates,
            expected_turns=len(workload.turns),
            expected_overrides=len(schedule.overrides),
            within_s=240,
        )
        problems = await verify_end_state(
            database_url,
            workload.turns,
            updates,
            expected_quotes=workload.expected_quotes(),
            overrides=schedule.overrides,
        )
        problems += await partial_state_problems(database_url)
        dead_letters = dlq.json_values()

    print("\n".join(f"{landing.moment}: {landing.proof}" for landing in killer.landings))
    assert [landing.moment for landing in killer.landings] == KILL_PLAN
    assert killer.missed() == [], f"kills that left no proof of their moment: {killer.landings}"
    assert problems == [], describe_problems(problems)
    assert dead_letters == [], dead_letters
    assert len(schedule.overrides) == 3 * len(schedule.corrected)
    assert len(sent_overrides) == len(schedule.overrides) + schedule.redelivered
    read_twice = sum(len(copies) - 1 for copies in distinct_updates(updates).values())
    assert read_twice > 0, "the relay kill between publish and mark republished nothing"
    batches = workers.events("batch_committed")
    assert any(b["turns"] and b["overrides"] for b in batches), "no batch mixed the two topics"
    redelivered = sum(line.get("duplicates", 0) for line in batches)
    assert redelivered > 0, "no kill landed between a state commit and its offset commit"
    assert workers.secrets_in_logs(workload.turns, "sk-test-not-a-real-key") == []


# Debounced extraction: where the kills are aimed, one after each of the first rounds.
DEBOUNCED_KILL_PLAN = ["extraction", "write_transaction", "before_release", "random", "extraction"]


async def test_sigkill_in_debounce_mode_applies_every_turn_and_override_exactly_once(
    workers: Workers,
    llm: QuotingLLM,
    probe: DatabaseProbe,
    database_url: str,
    kafka_bootstrap_servers: str,
    topics: Topics,
) -> None:
    """EXTRACT_DEBOUNCE_MS=200: batches only defer turns and commit; the extraction scheduler
    extracts them. 360 turns over 60 conversations in 6 live rounds; after each of the first 5
    the worker is SIGKILLed and restarted, aimed as in the turn-path test, plus
    `before_release`: the kill lands while the deletion of deferred turns whose version has
    committed is paused (their next claimant must find them stored: duplicates). A killed
    worker's claims are taken over when their lease runs out (30 s, by the database's clock).
    People correct every 7th conversation meanwhile (overrides flush the deferred turns
    first), the first three overrides published twice.

    Right after each kill, no committed offset may cover a turn neither stored nor deferred, or
    an unapplied override, and the stored state must be consistent; the end state must hold
    every invariant (exact counts, every version's event read back, each override once) and
    nothing may be dead-lettered."""
    workload = Workload.generate(conversations=60, turns_per_conversation=6)
    schedule = OverrideSchedule(workload=workload, due=(1, 3, 5))
    await widen_write_transaction(database_url, 0.05)
    llm.latency_s = 0.15
    sent: list[Sent] = []
    sent_overrides: list[Sent] = []

    killer = killer_for(llm, probe, workers, topics, database_url, kafka_bootstrap_servers, sent)
    killer.max_warm_up_versions = 20
    settings = {
        "BATCH_MAX_RECORDS": "50",
        "EXTRACT_DEBOUNCE_MS": "200",
        "EXTRACT_MAX_WAIT_MS": "1000",
    }

    async def publish_overrides_due(after_round: int) -> None:
        stored = await conversations_with_state(database_url)
        due = schedule.due_after(after_round, stored)
        sent_overrides.extend(await produce_tracked(kafka_bootstrap_servers, topics.overrides, due))

    async with (
        TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates) as updates,
        TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.dlq) as dlq,
    ):
        await killer.started()
        worker = workers.start(**settings)
        for number, round_turns in enumerate(workload.rounds):
            # Aimed before the round is produced: the scheduler extracts a round at once.
            moment = DEBOUNCED_KILL_PLAN[number] if number < len(DEBOUNCED_KILL_PLAN) else None
            aimed = killer.aim(moment, within_s=90) if moment is not None else None
            sent += await produce_tracked(kafka_bootstrap_servers, topics.turns, round_turns)
            await publish_overrides_due(number)
            if moment is not None and aimed is not None:
                await killer.kill_when(moment, aimed, worker)
                lost = await unstored_below_committed(
                    database_url,
                    kafka_bootstrap_servers,
                    workers.group,
                    topics.turns,
                    sent,
                    stored_in=("tenant.conversation_turns", "tenant.deferred_turns"),
                )
                assert lost == [], (
                    f"{len(lost)} turns committed past but neither stored nor deferred"
                )
                lost = await unstored_below_committed(
                    database_url,
                    kafka_bootstrap_servers,
                    workers.group,
                    topics.overrides,
                    sent_overrides,
                    stored_in=("tenant.overrides",),
                )
                assert lost == [], f"{len(lost)} overrides committed past but not applied"
                assert (partial := await partial_state_problems(database_url)) == [], partial
                await killer.started()
                worker = workers.start(**settings)
            if number == len(DEBOUNCED_KILL_PLAN) - 1:  # the kills are done: full speed
                llm.latency_s = 0.0
                await probe.value("DROP TRIGGER reliability_pause ON tenant.outbox")
        await eventually(
            lambda: conversations_with_state(database_url),
            lambda stored: stored >= set(schedule.corrected),
            within_s=120,
            what="every corrected conversation stored",
        )
        await publish_overrides_due(len(workload.rounds))
        assert schedule.unpublished == []
        await settle(
            probe,
            updates,
            expected_turns=len(workload.turns),
            expected_overrides=len(schedule.overrides),
            within_s=240,
        )
        await eventually(probe.deferred, lambda n: n == 0, within_s=120, what="nothing deferred")
        problems = await verify_end_state(
            database_url,
            workload.turns,
            updates,
            expected_quotes=workload.expected_quotes(),
            overrides=schedule.overrides,
        )
        problems += await partial_state_problems(database_url)
        dead_letters = dlq.json_values()

    print("\n".join(f"{landing.moment}: {landing.proof}" for landing in killer.landings))
    assert [landing.moment for landing in killer.landings] == DEBOUNCED_KILL_PLAN
    assert killer.missed() == [], f"kills that left no proof of their moment: {killer.landings}"
    assert problems == [], describe_problems(problems)
    assert dead_letters == [], dead_letters
    assert len(sent_overrides) == len(schedule.overrides) + schedule.redelivered
    assert workers.secrets_in_logs(workload.turns, "sk-test-not-a-real-key") == []


def killer_for(
    llm: QuotingLLM,
    probe: DatabaseProbe,
    workers: Workers,
    topics: Topics,
    database_url: str,
    kafka_bootstrap_servers: str,
    sent: list[Sent],
) -> Killer:
    """The seeded killer of a crash test; its `after_state_commit` proof counts the turns of
    `sent` (as the test fills it) stored but not committed past in Kafka."""

    async def stored_not_committed_past() -> int:
        stored = await stored_above_committed(
            database_url, kafka_bootstrap_servers, workers.group, topics.turns, sent
        )
        return len(stored)

    return Killer(
        llm=llm,
        probe=probe,
        rng=random.Random(SEED),
        stored_above_committed=stored_not_committed_past,
    )
