"""Database outage: PostgreSQL crashes mid-run and comes back; the worker rides it out."""

from __future__ import annotations

from devtools.stack import PostgresProcess
from tests.harness import TopicReader, Topics
from tests.reliability.support import (
    DatabaseProbe,
    QuotingLLM,
    Sent,
    Workers,
    Workload,
    committed_offsets,
    describe_problems,
    produce_tracked,
    settle,
    stop_worker,
    unstored_below_committed,
    verify_end_state,
)
from tests.waiting import eventually

FAILED_BATCHES_DURING_OUTAGE = 4  # with REDELIVERY_BACKOFF_S=0.2: about 3 s of outage


async def test_database_crash_mid_run_commits_nothing_unstored_and_loses_nothing(
    workers: Workers,
    llm: QuotingLLM,
    own_postgres: PostgresProcess,
    kafka_bootstrap_servers: str,
    topics: Topics,
) -> None:
    """Rounds 0-2 are applied; round 3 is produced and PostgreSQL is stopped with
    `pg_ctl -m immediate` (a crash) while it is being processed; rounds 4-5 arrive during the
    outage. The outage is held until the worker has failed FAILED_BATCHES_DURING_OUTAGE
    batches, and across those failures the group's committed offsets must not move. Then
    PostgreSQL starts again on the same port (no committed offset may cover a turn it lacks),
    rounds 6-7 follow, and the same worker process, never restarted, must end with the exact
    counts: it reconnected (pool and LISTEN connection) by itself."""
    database_url = own_postgres.url
    workers.database_url = database_url
    workload = Workload.generate(conversations=100, turns_per_conversation=8)
    llm.latency_s = 0.05  # keeps round 3 in flight long enough to be cut by the crash

    sent: list[Sent] = []

    async def produce(number: int) -> None:
        sent.extend(
            await produce_tracked(kafka_bootstrap_servers, topics.turns, workload.rounds[number])
        )

    probe = await DatabaseProbe.open(database_url)
    async with TopicReader(
        bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
    ) as updates:
        worker = workers.start()
        for number in range(3):
            await produce(number)
        await eventually(probe.applied, lambda n: n == 300, within_s=60, what="rounds 0-2")

        await produce(3)
        await eventually(probe.applied, lambda n: n > 300, within_s=30, what="round 3 started")
        await probe.close()
        own_postgres.stop(mode="immediate")
        for number in (4, 5):
            await produce(number)

        async def failures() -> int:
            return len(workers.events("batch_not_committed"))

        first = await eventually(failures, lambda n: n >= 1, within_s=30, what="a failed batch")
        offsets_at_first_failure = await committed_offsets(
            kafka_bootstrap_servers, workers.group, topics.turns
        )
        await eventually(
            failures,
            lambda n: n >= first + FAILED_BATCHES_DURING_OUTAGE,
            within_s=60,
            what="more failed batches",
        )
        offsets_during_outage = await committed_offsets(
            kafka_bootstrap_servers, workers.group, topics.turns
        )
        assert worker.alive, "the worker died with the database"
        own_postgres.start()
        lost = await unstored_below_committed(
            database_url, kafka_bootstrap_servers, workers.group, topics.turns, sent
        )
        assert lost == [], f"{len(lost)} turns committed past but not stored"

        for number in (6, 7):
            await produce(number)
        probe = await DatabaseProbe.open(database_url)
        try:
            await settle(probe, updates, expected_turns=len(workload.turns), within_s=120)
        finally:
            await probe.close()
        problems = await verify_end_state(
            database_url, workload.turns, updates, expected_quotes=workload.expected_quotes()
        )

    assert offsets_during_outage == offsets_at_first_failure, "offsets committed while down"
    assert problems == [], describe_problems(problems)
    assert worker.alive and len(workers.started) == 1
    assert await stop_worker(worker) == 0
    assert workers.secrets_in_logs(workload.turns, "sk-test-not-a-real-key") == []
