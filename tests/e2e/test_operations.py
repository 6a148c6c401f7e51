"""The operations endpoints of `python -m worker run`: /health, /ready (with a PostgreSQL that
is stopped and started again), /metrics after a run, and the AsyncAPI page."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from faststream.specification.asyncapi.site import ASYNCAPI_TRY_IT_PLUGIN_URL
from prometheus_client.parser import text_string_to_metric_families

from devtools.stack import free_port, start_postgres
from tests.fakes.llm_server import FakeLLMServer
from tests.harness import Topics, WorkerProcess, applied_turns, fetch, produce, turn
from tests.waiting import eventually
from worker.store.postgres import connect, migrate

StartWorker = Callable[..., WorkerProcess]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def get(url: str) -> tuple[int, str]:
    """(status, body); (0, error) while nothing listens yet."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(url) as response,
        ):
            return response.status, await response.text()
    except aiohttp.ClientError as error:
        return 0, type(error).__name__


async def ready(base: str) -> tuple[int, dict[str, Any]]:
    status, body = await get(f"{base}/ready")
    return status, json.loads(body) if status else {}


async def scrape(base: str) -> Samples:
    status, body = await get(f"{base}/metrics")
    assert status == 200, body
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when the series does not exist (nothing counted yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` that carries `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def test_health_and_ready_follow_postgres(
    tmp_path: Path, start_worker: StartWorker, kafka_bootstrap_servers: str, topics: Topics
) -> None:
    postgres = await asyncio.to_thread(start_postgres, tmp_path / "pg", durable=False)
    try:
        conn = await connect(postgres.url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        start_worker(DATABASE_URL=postgres.url, HTTP_PORT=str(port))

        await eventually(lambda: get(f"{base}/health"), lambda r: r[0] == 200, what="/health")
        _, report = await eventually(lambda: ready(base), lambda r: r[0] == 200, what="ready")
        assert report["ready"] is True and report["database"] == "ok"
        # 4 partitions of the turn topic and 4 of the override topic (tests/harness.py Topics)
        assert report["consumer"]["status"] == "idle" and report["consumer"]["partitions"] == 8

        await asyncio.to_thread(postgres.stop)
        _, report = await eventually(
            lambda: ready(base), lambda r: r[0] == 503, what="not ready without PostgreSQL"
        )
        assert report["ready"] is False and report["database"] != "ok"
        assert report["broker"] == "ok"
        assert (await get(f"{base}/health"))[0] == 200, "alive even when not ready"

        await asyncio.to_thread(postgres.start)
        await eventually(lambda: ready(base), lambda r: r[0] == 200, what="ready again")
    finally:
        await asyncio.to_thread(postgres.stop)


def stage_proposing_reply(request: dict[str, Any]) -> dict[str, Any]:
    """Proposes `discovery`, or `negotiation` (a skip, rejected) when a turn says "leap"."""
    prompt = "\n".join(str(m.get("content") or "") for m in request.get("messages", []))
    stage = "negotiation" if "leap" in prompt else "discovery"
    return {"bant": {}, "meddic": {}, "suggested_stage": stage, "stage_reason": "test"}


async def test_metrics_count_what_was_sent(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    fake_llm.reply_builder = stage_proposing_reply
    tenant = uuid.uuid4()
    good = [
        turn(tenant, "acme", "ann", 0, "we are looking at options"),
        turn(tenant, "acme", "ann", 1, "our team is ten people"),
        turn(tenant, "globex", "bob", 0, "tell me more"),
        turn(tenant, "globex", "bob", 1, "who else uses it"),
        turn(tenant, "initech", "cy", 0, "let us leap straight to pricing"),
    ]
    no_email = turn(tenant, "acme", "dan", 0, "hello")
    del no_email["contact_email"]
    bad: list[Any] = [
        (b"k1", b"{not json"),
        (b"k2", json.dumps(no_email).encode()),
        (b"k3", json.dumps(turn(tenant, "acme", "eve", 0, "x" * 101)).encode()),
    ]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    start_worker(HTTP_PORT=str(port), MAX_TURN_CHARS="100")
    await produce(kafka_bootstrap_servers, topics.turns, [*good, *bad])
    await eventually(lambda: applied_turns(database_url), lambda n: n == 5, what="5 turns")
    await produce(kafka_bootstrap_servers, topics.turns, good[:2])  # redelivered: duplicates
    samples = await eventually(
        lambda: scrape(base),
        lambda s: (
            value(s, "qualification_duplicates_skipped_total") == 2
            and value(s, "qualification_outbox_backlog") == 0
        ),
        what="the duplicates counted and the outbox drained",
    )

    states = await fetch(database_url, "SELECT version FROM tenant.conversation_states")
    versions = sum(row["version"] for row in states)
    assert value(samples, "qualification_turns_consumed_total") == 10
    assert value(samples, "qualification_turns_applied_total") == 5
    for reason in ("invalid_json", "invalid_event", "too_large"):
        assert value(samples, "qualification_dead_lettered_total", reason=reason) == 1, reason
    assert value(samples, "qualification_dead_lettered_total", reason="conflict") == 0
    model = "openai/fake-model"
    assert value(samples, "qualification_llm_calls_total", model=model, status="ok") == (
        fake_llm.received
    )
    assert value(samples, "qualification_llm_tokens_total", model=model, kind="prompt") == (
        fake_llm.prompt_tokens
    )
    assert value(samples, "qualification_llm_latency_seconds_count", model=model) == (
        fake_llm.received
    )
    stage = "qualification_stage_proposals_total"
    accepted = {"from_stage": "prospecting", "to_stage": "discovery", "outcome": "accepted"}
    rejected = {"from_stage": "prospecting", "to_stage": "negotiation", "outcome": "rejected"}
    assert value(samples, stage, **accepted) == 2
    assert value(samples, stage, **rejected) == 1
    assert total(samples, "qualification_state_versions_total") == versions
    assert value(samples, "qualification_outbox_published_total") == versions
    assert value(samples, "qualification_outbox_publish_latency_seconds_count") == versions
    assert total(samples, "qualification_consumer_lag", topic=topics.turns) == 0
    batches = value(samples, "qualification_batch_duration_seconds_count")
    assert batches >= 2 and value(samples, "qualification_batch_size_records_sum") == 10
    assert total(samples, "faststream_received_messages_total") == 10


async def test_asyncapi_page_is_served_without_try_it_out(
    start_worker: StartWorker,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    start_worker(HTTP_PORT=str(port))
    _, page = await eventually(
        lambda: get(f"{base}/docs/asyncapi"), lambda r: r[0] == 200, what="the page"
    )
    status, document = await get(f"{base}/docs/asyncapi.json")
    assert status == 200
    channels = {c["address"] for c in json.loads(document)["channels"].values()}
    assert len(channels) == 4
    assert ASYNCAPI_TRY_IT_PLUGIN_URL not in page, "no try-it-out publishing from the page"
    assert (await get(f"{base}/docs/asyncapi/try"))[0] == 404
