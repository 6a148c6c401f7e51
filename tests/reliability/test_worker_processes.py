"""`python -m worker run --workers 2`: two processes of one consumer group under FastStream's
supervisor; one child SIGKILLed mid-run is replaced, and every turn is still applied once."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

from devtools.stack import free_port
from devtools.stack.processes import port_is_free
from tests.harness import TopicReader, Topics, produce
from tests.reliability.support import (
    DatabaseProbe,
    JsonObject,
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

SETTINGS = {"BATCH_MAX_RECORDS": "40", "LLM_CONCURRENCY": "8"}


def started_children(workers: Workers) -> list[JsonObject]:
    """The children's `worker_process_started` lines, in order (worker_process, pid)."""
    return workers.events("worker_process_started")


def batches_by_child(workers: Workers) -> dict[int, int]:
    counts: dict[int, int] = {}
    for line in workers.events("batch_committed"):
        counts[line["worker_process"]] = counts.get(line["worker_process"], 0) + 1
    return counts


def pid_of(children: Sequence[JsonObject], number: int) -> int:
    """The latest pid of child `number`."""
    return int([c for c in children if c["worker_process"] == number][-1]["pid"])


def two_free_ports() -> int:
    """A port p with p + 1 free too (child i serves HTTP on HTTP_PORT + i)."""
    while not port_is_free((port := free_port()) + 1):
        continue
    return port


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_two_processes_apply_every_turn_once_and_a_killed_child_is_replaced(
    workers: Workers,
    llm: QuotingLLM,
    probe: DatabaseProbe,
    database_url: str,
    kafka_bootstrap_servers: str,
    topics: Topics,
) -> None:
    """960 turns of 120 conversations on 6 partitions per topic. Both children must commit
    batches and report 6 of the 12 input partitions on their own /ready (HTTP_PORT and
    HTTP_PORT + 1); once half the turns are applied, child 1 is SIGKILLed while an extraction
    call is in flight. The supervisor starts a new child 1; its partitions' batches
    are redelivered; the end state is the crash test's check: each turn applied exactly once,
    versions without gap, every version's event read back. SIGTERM to the parent then stops
    both children cleanly (each logs `worker_process_stopped`) and the parent exits 0."""
    workload = Workload.generate(conversations=120, turns_per_conversation=8)
    total = len(workload.turns)
    llm.latency_s = 0.1

    async with TopicReader(
        bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
    ) as updates:
        port = two_free_ports()
        parent = workers.start("--workers", "2", **SETTINGS, HTTP_PORT=str(port))
        for number in (0, 1, 2):
            await produce(kafka_bootstrap_servers, topics.turns, workload.rounds[number])

        async def both_committed() -> dict[int, int]:
            return batches_by_child(workers)

        await eventually(
            both_committed, lambda n: set(n) == {0, 1}, within_s=90, what="a batch of each child"
        )
        # Each child answers on its own port and owns half of the 2 x 6 input partitions.
        assert [await assigned_partitions(p) for p in (port, port + 1)] == [6, 6]
        for number in range(3, 8):
            await produce(kafka_bootstrap_servers, topics.turns, workload.rounds[number])
        await eventually(probe.applied, lambda n: n >= total // 2, within_s=90, what="halfway")
        await llm.call_in_flight(since=llm.received)
        assert await probe.applied() < total, "the kill came too late to land mid-run"
        killed = pid_of(started_children(workers), 1)
        os.kill(killed, signal.SIGKILL)

        async def child_1_pids() -> list[int]:
            return [int(c["pid"]) for c in started_children(workers) if c["worker_process"] == 1]

        pids = await eventually(
            child_1_pids, lambda p: len(p) == 2, within_s=60, what="a new child 1"
        )
        await settle(probe, updates, expected_turns=total, within_s=180)
        problems = await verify_end_state(
            database_url, workload.turns, updates, expected_quotes=workload.expected_quotes()
        )

    assert problems == [], describe_problems(problems)
    assert pids[0] == killed and pids[1] != killed
    children = [pid_of(started_children(workers), 0), pids[1]]
    assert await stop_worker(parent) == 0
    assert [process_exists(pid) for pid in children] == [False, False]
    stopped = [
        (line["worker_process"], line["pid"]) for line in workers.events("worker_process_stopped")
    ]
    assert sorted(stopped) == [(0, children[0]), (1, children[1])], "each child drained and stopped"
    assert workers.secrets_in_logs(workload.turns, "sk-test-not-a-real-key") == []
