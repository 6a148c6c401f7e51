"""Graceful stop: SIGTERM in the middle of a batch leaves no partial state."""

from __future__ import annotations

import signal
import time

from tests.harness import TopicReader, Topics, WorkerProcess
from tests.reliability.support import (
    DatabaseProbe,
    QuotingLLM,
    Sent,
    Workers,
    Workload,
    describe_problems,
    partial_state_problems,
    produce_tracked,
    settle,
    stop_worker,
    unstored_below_committed,
    verify_end_state,
    widen_write_transaction,
)
from tests.waiting import eventually

# FastStream's graceful timeout (15 s), then the worker's own shutdown; a pod's default grace
# period is 30 s.
STOP_WITHIN_S = 30.0


async def test_sigterm_mid_batch_leaves_no_partial_state_and_counts_stay_exact(
    workers: Workers,
    llm: QuotingLLM,
    probe: DatabaseProbe,
    database_url: str,
    kafka_bootstrap_servers: str,
    topics: Topics,
) -> None:
    """Three SIGTERMs, each while a batch is in progress: while extraction calls are in
    flight (LLM latency 200 ms), while a write transaction is open (held 50 ms at its outbox
    insert by a trigger), and while the LLM hangs. Each time the worker must exit 0 in time,
    and right then the database must be consistent (no turn without its version, no version
    without its event) and no committed offset may cover an unstored turn. After the restarts
    the counts are exact."""
    workload = Workload.generate(conversations=100, turns_per_conversation=6)
    rounds = workload.rounds
    await widen_write_transaction(database_url, 0.05)
    llm.latency_s = 0.2
    sent: list[Sent] = []

    async def produce(*numbers: int) -> None:
        batch = [t for n in numbers for t in rounds[n]]
        sent.extend(await produce_tracked(kafka_bootstrap_servers, topics.turns, batch))

    async def stop_and_check(worker: WorkerProcess) -> None:
        started = time.monotonic()
        code = await stop_worker(worker, signal.SIGTERM, within_s=STOP_WITHIN_S)
        took = time.monotonic() - started
        assert code == 0, f"SIGTERM exit code {code}"
        problems = await partial_state_problems(database_url)
        assert problems == [], describe_problems(problems)
        lost = await unstored_below_committed(
            database_url, kafka_bootstrap_servers, workers.group, topics.turns, sent
        )
        assert lost == [], f"{len(lost)} turns committed past but not stored"
        print(f"stopped in {took:.1f}s")

    async with TopicReader(
        bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
    ) as updates:
        worker = workers.start()
        await produce(0, 1)
        await llm.call_in_flight(since=0)
        await stop_and_check(worker)

        worker = workers.start()
        await produce(2, 3)
        await eventually(
            probe.sleeping_writers, lambda n: n > 0, interval=0.005, what="a write transaction"
        )
        await stop_and_check(worker)

        # No circuit breaker this time: 100 conversations, 8 at a time, each waiting out the
        # 4 s retry budget, outlast FastStream's graceful timeout (15 s), so the batch is
        # cancelled wherever it is (mostly waiting on the LLM, some inside a write).
        worker = workers.start(LLM_CIRCUIT_FAILURES="1000", LLM_CONCURRENCY="8")
        since = llm.received
        llm.hang()
        await produce(4)
        await llm.call_in_flight(since=since)
        await stop_and_check(worker)

        llm.recover()
        llm.latency_s = 0.0
        worker = workers.start()
        await produce(5)
        await settle(probe, updates, expected_turns=len(workload.turns), within_s=120)
        problems = await verify_end_state(
            database_url, workload.turns, updates, expected_quotes=workload.expected_quotes()
        )

    assert problems == [], describe_problems(problems)
    assert workers.secrets_in_logs(workload.turns, "sk-test-not-a-real-key") == []
