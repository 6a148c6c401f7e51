"""`python -m worker forget`: a conversation erased from every table, and its tombstone."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import ConversationKey, ConversationTurn
from tests.harness import REPO_ROOT, Topics, turn, worker_env
from tests.state_store import RULES
from worker.bootstrap import build_service
from worker.qualify.repository import ConversationStateRepository
from worker.store.erasure import conversation_hash

NEED = "We need a faster onboarding because our reps lose hours on manual data entry."
BUDGET = "Our budget is $80,000 for this, approved by finance."


async def conversation_with_history(
    repository: ConversationStateRepository, owner_pool: asyncpg.Pool, key: ConversationKey
) -> None:
    """Turns, two versions, a stage transition, an override and outbox rows (one of them
    published), made through the service like the worker does. The one place that knows how
    to drive the service, so a change of its API touches this helper only."""
    service = build_service(RULES, repository.database)
    tenant, account, contact = key
    for sequence, text in enumerate((NEED, BUDGET)):
        payload = turn(tenant, account, contact, sequence, text)
        outcome = await service.process_batch([ConversationTurn.model_validate(payload)])
        assert outcome.applied == 1
    await owner_pool.execute(
        "INSERT INTO tenant.overrides (event_id, tenant_id, account_id, contact_id, actor,"
        " payload, fingerprint, version) VALUES ($1, $2, $3, $4, $5, $6, $7, 2)",
        uuid.uuid4(),
        tenant,
        account,
        contact,
        {"type": "user", "id": "rep-1"},
        {"lock": ["budget"]},
        "0" * 64,
    )
    await owner_pool.execute(
        "UPDATE tenant.outbox SET published_at = now()"
        " WHERE id = (SELECT min(id) FROM tenant.outbox WHERE key = $1)",
        str(key),
    )


async def all_rows(owner_pool: asyncpg.Pool) -> dict[str, set[str]]:
    """Every row of every table in schema tenant, as JSON text, by table."""
    tables = await owner_pool.fetch(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = 'tenant' AND table_type = 'BASE TABLE'"
    )
    rows: dict[str, set[str]] = {}
    for table in tables:
        name = table["table_name"]
        found = await owner_pool.fetch(f"SELECT row_to_json(t)::text AS row FROM tenant.{name} t")
        rows[name] = {r["row"] for r in found}
    return rows


def rows_of(rows: dict[str, set[str]], key: ConversationKey) -> dict[str, set[str]]:
    """The rows that name the conversation: its tenant and its contact id in one row."""
    return {
        table: {r for r in found if str(key.tenant_id) in r and key.contact_id in r}
        for table, found in rows.items()
    }


async def cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "worker", *args]
    return await asyncio.to_thread(
        subprocess.run,
        command,
        env=dict(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,  # no terminal: without --yes, forget must refuse
    )


async def read_topic(bootstrap_servers: str, topic: str) -> list[tuple[bytes | None, Any]]:
    """Every record of `topic` up to its current end, as (key, value)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await consumer_partitions(consumer, topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[tuple[bytes | None, Any]] = []
        for tp in partitions:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                records.extend((m.key, m.value) for m in batch.get(tp, []))
        return records
    finally:
        await consumer.stop()


async def consumer_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
    return set(partitions or ())


async def test_forget_erases_one_conversation_everywhere_and_publishes_one_tombstone(
    repository: ConversationStateRepository,
    owner_pool: asyncpg.Pool,
    database_url: str,
    kafka_bootstrap_servers: str,
    topics: Topics,
) -> None:
    tenant, other_tenant = uuid.uuid4(), uuid.uuid4()
    erased = ConversationKey(tenant, "acme", f"jane-{uuid.uuid4().hex[:8]}")
    kept = [
        ConversationKey(tenant, "acme", f"bob-{uuid.uuid4().hex[:8]}"),
        ConversationKey(other_tenant, "acme", erased.contact_id),
    ]
    for key in (erased, *kept):
        await conversation_with_history(repository, owner_pool, key)
    before = await all_rows(owner_pool)
    of_erased = rows_of(before, erased)
    assert all(
        of_erased[table]
        for table in (
            "conversation_states",
            "conversation_turns",
            "stage_transitions",
            "overrides",
            "outbox",
        )
    ), {table: len(found) for table, found in of_erased.items()}
    assert await owner_pool.fetchval(
        "SELECT count(*) FILTER (WHERE published_at IS NULL) FROM tenant.outbox WHERE key = $1",
        str(erased),
    )
    env = worker_env(
        database_url=database_url,
        bootstrap_servers=kafka_bootstrap_servers,
        topics=topics,
        llm_base_url="http://127.0.0.1:9/v1",
    )

    refused = await cli(env, "forget", str(tenant), erased.account_id, erased.contact_id)
    assert refused.returncode == 2, refused.stderr
    assert "--yes" in refused.stderr
    assert await all_rows(owner_pool) == before

    done = await cli(
        env, "forget", str(tenant), erased.account_id, erased.contact_id, "--yes", "--by", "dpo"
    )
    assert done.returncode == 0, done.stderr
    assert "tombstone published" in done.stdout

    after = await all_rows(owner_pool)
    assert all(not found for found in rows_of(after, erased).values())
    erasures = after.pop("erasures")
    expected = {table: found - of_erased.get(table, set()) for table, found in before.items()}
    expected.pop("erasures")
    assert after == expected, "other conversations and tenants are untouched"
    (record,) = [json.loads(row) for row in erasures]
    assert record["conversation_hash"] == conversation_hash(erased)
    assert record["erased_by"] == "dpo"
    assert erased.contact_id not in json.dumps(record) and "acme" not in json.dumps(record)

    assert await read_topic(kafka_bootstrap_servers, topics.updates) == [
        (str(erased).encode(), None)
    ]

    again = await cli(env, "forget", str(tenant), erased.account_id, erased.contact_id, "--yes")
    assert again.returncode == 0, again.stderr
    assert "already erased" in again.stdout and "published again" in again.stdout
    tombstones = await read_topic(kafka_bootstrap_servers, topics.updates)
    assert tombstones == [(str(erased).encode(), None)] * 2
    assert len(await owner_pool.fetch("SELECT 1 FROM tenant.erasures")) == 1


async def test_forget_of_an_unknown_conversation_says_so_and_exits_1(
    database_url: str, kafka_bootstrap_servers: str, topics: Topics
) -> None:
    env = worker_env(
        database_url=database_url,
        bootstrap_servers=kafka_bootstrap_servers,
        topics=topics,
        llm_base_url="http://127.0.0.1:9/v1",
    )
    result = await cli(env, "forget", str(uuid.uuid4()), "acme", "nobody", "--yes")
    assert result.returncode == 1
    assert "no such conversation" in result.stderr
    assert await read_topic(kafka_bootstrap_servers, topics.updates) == []


async def test_forget_with_bad_arguments_exits_2_without_a_traceback(
    database_url: str, kafka_bootstrap_servers: str, topics: Topics
) -> None:
    env = worker_env(
        database_url=database_url,
        bootstrap_servers=kafka_bootstrap_servers,
        topics=topics,
        llm_base_url="http://127.0.0.1:9/v1",
    )
    for args in (
        ("not-a-uuid", "acme", "jane", "--yes"),
        (str(uuid.uuid4()), "acme", "--yes"),
        (str(uuid.uuid4()), "acme", "x" * 101, "--yes"),
    ):
        result = await cli(env, "forget", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stderr.strip(), args


async def test_a_tombstone_the_broker_did_not_take_is_published_by_running_forget_again(
    repository: ConversationStateRepository,
    owner_pool: asyncpg.Pool,
    database_url: str,
    kafka_bootstrap_servers: str,
    topics: Topics,
) -> None:
    erased = ConversationKey(uuid.uuid4(), "acme", "jane")
    await conversation_with_history(repository, owner_pool, erased)
    env = worker_env(
        database_url=database_url,
        bootstrap_servers=kafka_bootstrap_servers,
        topics=topics,
        llm_base_url="http://127.0.0.1:9/v1",
    )
    args = ("forget", str(erased.tenant_id), erased.account_id, erased.contact_id, "--yes")

    no_broker = await cli({**env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}, *args)
    assert no_broker.returncode == 3, no_broker.stderr
    assert "erased from the database" in no_broker.stderr and "run forget again" in no_broker.stderr
    assert not await owner_pool.fetchval(
        "SELECT count(*) FROM tenant.conversation_turns WHERE tenant_id = $1", erased.tenant_id
    )

    retried = await cli(env, *args)
    assert retried.returncode == 0, retried.stderr
    assert await read_topic(kafka_bootstrap_servers, topics.updates) == [
        (str(erased).encode(), None)
    ]
