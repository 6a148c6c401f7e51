"""Co-partitioning of the two input topics against the real broker: the worker's assignors give
partition i of `conversation.turn` and of `qualification.override` to one group member, and the
start-up check refuses topics of different partition counts."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor

from devtools.stack import create_topics
from tests.harness import REPO_ROOT, Topics, worker_env
from tests.waiting import eventually
from worker.errors import ConfigurationError
from worker.ingest.consumer import ASSIGNORS, require_co_partitioned

# Not a multiple of the members: aiokafka's default round-robin, dealing the partitions of both
# topics out in turn, then gives partition i of the two topics to different members.
PARTITIONS = 5


@pytest_asyncio.fixture
async def input_topics(kafka_bootstrap_servers: str) -> AsyncIterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:10]
    turns, overrides = f"turns-{suffix}", f"overrides-{suffix}"
    await create_topics(kafka_bootstrap_servers, [turns, overrides], partitions=PARTITIONS)
    yield turns, overrides


async def members_of_one_group(
    stack: AsyncExitStack,
    bootstrap_servers: str,
    topics: Sequence[str],
    *,
    count: int,
    assignors: Sequence[type[AbstractPartitionAssignor]],
) -> list[AIOKafkaConsumer]:
    group = f"group-{uuid.uuid4().hex[:8]}"
    members = []
    for _ in range(count):
        member = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
            partition_assignment_strategy=tuple(assignors),
            session_timeout_ms=3000,
            heartbeat_interval_ms=500,
        )
        await member.start()
        stack.push_async_callback(member.stop)
        members.append(member)
    return members


async def settled_assignments(
    members: Sequence[AIOKafkaConsumer], total: int
) -> list[dict[str, set[int]]]:
    """Each member's partition numbers per topic, once every partition has an owner."""

    async def assignments() -> list[dict[str, set[int]]]:
        result = []
        for member in members:
            owned: dict[str, set[int]] = {}
            for tp in member.assignment():
                owned.setdefault(tp.topic, set()).add(tp.partition)
            result.append(owned)
        return result

    def complete(found: list[dict[str, set[int]]]) -> bool:
        return sum(len(p) for owned in found for p in owned.values()) == total and all(found)

    return await eventually(assignments, complete, within_s=60, what="a settled assignment")


async def test_three_members_get_partition_i_of_both_topics_together(
    kafka_bootstrap_servers: str, input_topics: tuple[str, str]
) -> None:
    turns, overrides = input_topics
    async with AsyncExitStack() as stack:
        members = await members_of_one_group(
            stack, kafka_bootstrap_servers, input_topics, count=3, assignors=ASSIGNORS
        )
        found = await settled_assignments(members, total=2 * PARTITIONS)
    assert [owned[turns] for owned in found] == [owned[overrides] for owned in found]
    assert sorted(p for owned in found for p in owned[turns]) == list(range(PARTITIONS))


async def test_equal_partition_counts_pass_the_start_up_check(
    kafka_bootstrap_servers: str, input_topics: tuple[str, str]
) -> None:
    turns, overrides = input_topics
    count = await require_co_partitioned(
        kafka_bootstrap_servers, turn_topic=turns, override_topic=overrides
    )
    assert count == PARTITIONS


async def test_different_partition_counts_are_refused_naming_both_topics(
    kafka_bootstrap_servers: str, input_topics: tuple[str, str]
) -> None:
    turns, _ = input_topics
    fewer = f"overrides-{uuid.uuid4().hex[:10]}"
    await create_topics(kafka_bootstrap_servers, [fewer], partitions=2)
    with pytest.raises(ConfigurationError) as refused:
        await require_co_partitioned(
            kafka_bootstrap_servers, turn_topic=turns, override_topic=fewer
        )
    assert str(refused.value).startswith(
        f"TURN_TOPIC {turns} has 5 partitions and OVERRIDE_TOPIC {fewer} has 2 partitions: "
    )


async def test_a_missing_topic_is_refused_and_not_created(
    kafka_bootstrap_servers: str, input_topics: tuple[str, str]
) -> None:
    turns, _ = input_topics
    missing = f"overrides-{uuid.uuid4().hex[:10]}"
    with pytest.raises(ConfigurationError, match=f"OVERRIDE_TOPIC {missing} does not exist"):
        await require_co_partitioned(
            kafka_bootstrap_servers, turn_topic=turns, override_topic=missing
        )
    probe = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap_servers)
    await probe.start()
    try:
        assert missing not in await probe.topics()
    finally:
        await probe.stop()


@pytest.mark.parametrize("args", [(), ("--workers", "2")], ids=["one process", "two processes"])
async def test_the_worker_refuses_to_start_in_one_line_with_exit_2(
    kafka_bootstrap_servers: str, database_url: str, args: tuple[str, ...]
) -> None:
    """With `--workers`, the parent checks before it spawns: no child is started, and none is
    replaced again and again."""
    topics = Topics.unique()
    await topics.create(kafka_bootstrap_servers, partitions=PARTITIONS)
    await create_topics(
        kafka_bootstrap_servers, [fewer := f"fewer-{topics.overrides}"], partitions=2
    )
    env = worker_env(
        database_url=database_url,
        bootstrap_servers=kafka_bootstrap_servers,
        topics=topics,
        llm_base_url="http://127.0.0.1:9/v1",  # never called: the worker stops before any call
        OVERRIDE_TOPIC=fewer,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        "run",
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 2
    assert stdout == b""
    assert stderr.decode().splitlines() == [
        f"error: TURN_TOPIC {topics.turns} has 5 partitions and OVERRIDE_TOPIC {fewer} has "
        "2 partitions: the two need the same partition count, so that partition i of both goes "
        "to one worker (create the missing topic, or add partitions to the smaller one)"
    ]


async def test_an_unreachable_broker_is_one_line_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError) as refused:
        await require_co_partitioned("127.0.0.1:1", turn_topic="turns", override_topic="overrides")
    assert str(refused.value) == (
        "KAFKA_BOOTSTRAP_SERVERS 127.0.0.1:1: cannot read the topics' metadata "
        "(KafkaConnectionError)"
    )
