"""OpenTelemetry spans (the `otel` extra, installed with `dev`): a span per batch and per
conversation, with the extraction and the write transaction as child spans."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from aiokafka import TopicPartition
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from schemas import ConversationKey, DeadLetter
from tests.builders import Record
from tests.harness import turn
from tests.state_store import RULES
from worker.bootstrap import build_service
from worker.ingest.consumer import BatchHandler
from worker.ops import tracing
from worker.store.database import Database
from worker.store.erasure import conversation_hash


@dataclass
class CommittingConsumer:
    """The one call the handler makes on the broker's consumer here: commit."""

    commits: list[dict[TopicPartition, int]] = field(default_factory=list)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        tracing.use_tracer_provider(None)


def children(of: ReadableSpan, among: Sequence[ReadableSpan]) -> list[str]:
    assert of.context is not None
    return sorted(s.name for s in among if s.parent and s.parent.span_id == of.context.span_id)


async def test_batch_and_conversation_spans_with_extraction_and_write_children(
    database: Database, spans: InMemorySpanExporter
) -> None:
    tenant = uuid.uuid4()
    payloads = [
        turn(tenant, "acme", "ann", 0, "our budget is $50k"),
        turn(tenant, "acme", "ann", 1, "we need it by March"),
        turn(tenant, "globex", "bob", 0, "tell me more"),
    ]
    records = [
        Record(topic="turns", offset=i, value=orjson.dumps(p)) for i, p in enumerate(payloads)
    ]
    letters: list[DeadLetter] = []

    async def publish_dead_letter(letter: DeadLetter, key: bytes | None) -> None:
        letters.append(letter)

    async def committed(consumer: object) -> None:
        pass

    service = build_service(RULES, database)
    handler = BatchHandler(
        process_batch=service.process_batch,
        publish_dead_letter=publish_dead_letter,
        max_turn_chars=1000,
        override_topic="overrides",
        max_request_bytes=1024 * 1024,
        backoff_s=1.0,
        on_committed=committed,
    )
    consumer = CommittingConsumer()
    assert await handler.handle(records, consumer)

    finished = spans.get_finished_spans()
    [batch] = [s for s in finished if s.name == "batch"]
    assert batch.parent is None and batch.attributes == {"records": 3, "committed": True}
    conversations = [s for s in finished if s.name == "conversation"]
    assert children(batch, finished) == ["conversation", "conversation"]
    for conversation in conversations:
        assert children(conversation, finished) == ["extraction", "write_transaction"]
    # The key's hash (as tenant.erasures has it), never the key: spans outlive `forget`.
    assert {c.attributes["conversation_hash"] for c in conversations if c.attributes} == {
        conversation_hash(ConversationKey(tenant, "acme", "ann")),
        conversation_hash(ConversationKey(tenant, "globex", "bob")),
    }
    assert not any(
        "acme:ann" in str(value) for s in finished for value in (s.attributes or {}).values()
    )
    extraction = next(s for s in finished if s.name == "extraction")
    assert extraction.attributes is not None
    assert extraction.attributes["extraction.status"] == "ok"
    assert not any(
        "budget" in str(value) for s in finished for value in (s.attributes or {}).values()
    )
    assert consumer.commits and not letters


def configured(repo_root: Path, env: dict[str, str]) -> str:
    probe = "from worker.ops.tracing import configure_tracing; print(configure_tracing())"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=repo_root, check=True, capture_output=True
    )
    return done.stdout.decode().splitlines()[-1]


def test_tracing_is_off_without_an_endpoint_and_on_with_one(repo_root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    assert configured(repo_root, env) == "False"
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"  # nothing listens: no span is sent
    assert configured(repo_root, env) == "True"
