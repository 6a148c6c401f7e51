"""Scale-out and rebalance: two, then three workers in one consumer group; one killed halfway."""

from __future__ import annotations

import functools
import signal

from devtools.stack import free_port
from tests.harness import TopicReader, Topics, WorkerProcess, produce
from tests.reliability.support import (
    DatabaseProbe,
    QuotingLLM,
    Workers,
    Workload,
    assigned_partitions,
    describe_problems,
    settle,
    stop_worker,
    verify_end_state,
)
from tests.waiting import eventually

# Many small batches (many commits to race the rebalances), 8 extractions at a time: with the
# LLM's 100 ms the run lasts long enough for the kill to find calls in flight.
SETTINGS = {"BATCH_MAX_RECORDS": "60", "LLM_CONCURRENCY": "8"}


async def test_two_then_three_workers_one_killed_halfway_apply_every_turn_once(
    workers: Workers,
    llm: QuotingLLM,
    probe: DatabaseProbe,
    database_url: str,
    kafka_bootstrap_servers: str,
    topics: Topics,
) -> None:
    """1,200 turns over 150 conversations in 8 rounds. Two workers share the group from the
    start (each must commit batches, so both own partitions); a third joins after round 1, and
    once its /ready shows partitions the other rounds follow (it must commit batches too).
    Once half the turns are applied, one of the first two is SIGKILLed while extraction calls
    are in flight, and its partitions move to the survivors mid-batch. Batches revoked from a
    live worker and redelivered to another, and a dead member's uncommitted batches, all race
    the row lock. The end checks are the crash test's."""
    workload = Workload.generate(conversations=150, turns_per_conversation=8)
    total = len(workload.turns)
    llm.latency_s = 0.1

    async def batches_of(worker: WorkerProcess) -> int:
        return workers.committed_batches(worker)

    async with TopicReader(
        bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
    ) as updates:
        first, second = workers.start(**SETTINGS), workers.start(**SETTINGS)
        for number in (0, 1):
            await produce(kafka_bootstrap_servers, topics.turns, workload.rounds[number])
        for worker in (first, second):
            await eventually(
                functools.partial(batches_of, worker), lambda n: n > 0, within_s=60, what="a batch"
            )

        third_port = free_port()  # its /ready tells when the rebalance gave it partitions
        third = workers.start(**SETTINGS, HTTP_PORT=str(third_port))
        await eventually(
            functools.partial(assigned_partitions, third_port),
            lambda n: n > 0,
            within_s=60,
            interval=0.2,
            what="partitions for the third worker",
        )
        for number in range(2, 8):
            await produce(kafka_bootstrap_servers, topics.turns, workload.rounds[number])
        await eventually(
            functools.partial(batches_of, third), lambda n: n > 0, within_s=60, what="its batch"
        )

        await eventually(probe.applied, lambda n: n >= total // 2, within_s=90, what="halfway")
        await llm.call_in_flight(since=llm.received)
        assert await probe.applied() < total, "the kill came too late to land mid-run"
        assert await stop_worker(second, signal.SIGKILL) == -signal.SIGKILL
        await settle(probe, updates, expected_turns=total, within_s=180)
        problems = await verify_end_state(
            database_url, workload.turns, updates, expected_quotes=workload.expected_quotes()
        )

    assert problems == [], describe_problems(problems)
    assert [await stop_worker(w) for w in (first, third)] == [0, 0]
    assert workers.secrets_in_logs(workload.turns, "sk-test-not-a-real-key") == []
