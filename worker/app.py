"""Composition root: settings → pool → extractor → service → FastStream app.

`worker.app:app` is what `faststream run` and `python -m worker run` start: an `AsgiFastStream`
with `/health`, `/ready`, `/metrics` and the AsyncAPI page (worker/http.py). Nothing connects at
import time: the lifespan hooks open and close everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaProducer
from faststream.asgi import AsgiFastStream, AsyncAPIRoute
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import REGISTRY

from schemas import DeadLetter
from worker.errors import ConfigurationError
from worker.extract.factory import build_extractor
from worker.extract.port import Extractor
from worker.ingest.consumer import BatchHandler, register_consumer
from worker.ops import tracing
from worker.ops.asyncapi import declare_publishers, specification
from worker.ops.http import operational_routes
from worker.ops.logs import configure_logging
from worker.ops.readiness import ConsumerProgress, Readiness
from worker.qualify.service import QualificationService
from worker.qualify.sweeper import PendingSweeper
from worker.settings import Settings
from worker.store.database import create_pool, load_migrations
from worker.store.outbox import Message, OutboxRelay
from worker.store.repositories import ConversationStateRepository
from worker.store.retention import TurnTextRetention


@dataclass(kw_only=True)
class Runtime:
    """What the lifespan opens, for the handler and the shutdown hooks to use."""

    settings: Settings
    broker: KafkaBroker
    progress: ConsumerProgress
    pool: asyncpg.Pool | None = None
    extractor: Extractor | None = None
    handler: BatchHandler | None = None
    producer: AIOKafkaProducer | None = None
    relay_task: asyncio.Task[None] | None = None
    sweeper: PendingSweeper | None = None
    sweeper_task: asyncio.Task[None] | None = None
    retention_task: asyncio.Task[None] | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def batch_handler(self) -> BatchHandler:
        assert self.handler is not None, "the handler is built on startup"
        return self.handler

    async def open(self) -> None:
        s = self.settings
        tracing.configure_tracing()
        self.progress.started_at = self.progress.clock()
        self.pool = await create_pool(s.database_url, max_size=s.db_pool_size, role=s.db_role)
        await require_migrated(self.pool)
        self.extractor = build_extractor(s)
        service = QualificationService(
            repository=ConversationStateRepository(pool=self.pool),
            extractor=self.extractor,
            update_topic=s.update_topic,
            concurrency=s.llm_concurrency,
        )
        self.handler = BatchHandler(
            process_batch=service.process_batch,
            publish_dead_letter=self.publish_dead_letter,
            max_turn_chars=s.max_turn_chars,
            backoff_s=s.redelivery_backoff_s,
            on_committed=self.progress.committed,
        )
        if s.pending_sweep_interval_s > 0:
            self.sweeper = PendingSweeper(
                pool=self.pool,
                reextract=service.reextract,
                interval_s=s.pending_sweep_interval_s,
                quiet_s=s.pending_quiet_s,
            )

    async def start_relay(self) -> None:
        s = self.settings
        self.producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            enable_idempotence=s.kafka_enable_idempotence,
            acks="all",
            linger_ms=5,
        )
        await self.producer.start()
        assert self.pool is not None
        relay = OutboxRelay(
            pool=self.pool,
            database_url=s.database_url,
            publish_many=self.publish_many,
            poll_interval_s=s.outbox_poll_interval_s,
        )
        self.relay_task = asyncio.create_task(relay.run(self.stopping), name="outbox-relay")
        if s.turn_text_retention_days > 0:
            retention = TurnTextRetention(
                pool=self.pool,
                retention_days=s.turn_text_retention_days,
                interval_s=s.turn_text_retention_interval_s,
            )
            self.retention_task = asyncio.create_task(
                retention.run(self.stopping), name="turn-text-retention"
            )
        if self.sweeper is not None:
            self.sweeper_task = asyncio.create_task(
                self.sweeper.run(self.stopping), name="pending-sweeper"
            )

    async def close(self) -> None:
        self.stopping.set()
        if self.sweeper_task is not None:  # mid-extraction it would wait out the LLM budget
            self.sweeper_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sweeper_task
        if self.relay_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.relay_task
        if self.retention_task is not None:  # each batch is its own statement: safe to cancel
            self.retention_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.retention_task
        if self.producer is not None:
            await self.producer.stop()
        if self.pool is not None:
            await self.pool.close()
        tracing.shutdown_tracing()

    async def publish_many(self, messages: Sequence[Message]) -> None:
        assert self.producer is not None
        futures = [
            await self.producer.send(topic, value=value, key=key, headers=headers)
            for topic, key, value, headers in messages
        ]
        await asyncio.gather(*futures)

    async def publish_dead_letter(self, letter: DeadLetter, key: bytes | None) -> None:
        await self.broker.publish(
            letter.model_dump_json().encode(),
            topic=self.settings.dlq_topic,
            key=key,
            headers={"content-type": "application/json"},
        )


async def require_migrated(pool: asyncpg.Pool) -> None:
    """Refuse to start on a database `migrate` has not brought up to date."""
    expected = {m.version for m in load_migrations()}
    try:
        applied = {
            r["version"] for r in await pool.fetch("SELECT version FROM tenant.schema_migrations")
        }
    except asyncpg.UndefinedTableError:
        applied = set()
    if missing := sorted(expected - applied):
        raise ConfigurationError(
            f"the database lacks migrations {', '.join(missing)}: run `python -m worker migrate`"
        )


def create_app(settings: Settings | None = None) -> AsgiFastStream:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format)
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        enable_idempotence=settings.kafka_enable_idempotence,
        # FastStream's per-message "Received/Processed" lines would double our batch log line.
        log_level=logging.DEBUG,
        # Through the root handler (worker/logs.py), so its warnings are JSON lines on stderr too.
        logger=logging.getLogger("worker.broker"),
        middlewares=[KafkaPrometheusMiddleware(registry=REGISTRY, app_name="qualification-worker")],
    )
    progress = ConsumerProgress(stall_s=settings.ready_stall_s)
    runtime = Runtime(settings=settings, broker=broker, progress=progress)
    register_consumer(
        broker,
        topic=settings.turn_topic,
        group_id=settings.consumer_group,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        max_partition_fetch_bytes=settings.kafka_max_partition_fetch_bytes,
        handler=runtime.batch_handler,
    )
    declare_publishers(broker, settings)
    readiness = Readiness(broker=broker, progress=progress, pool=lambda: runtime.pool)
    return AsgiFastStream(
        broker,
        asgi_routes=operational_routes(readiness),
        logger=logging.getLogger("worker.app"),
        # The page only: no "try it out" endpoint that would publish to production topics.
        asyncapi_path=AsyncAPIRoute("/docs/asyncapi", try_it_out_path=None),
        specification=specification(),
        on_startup=[runtime.open],
        after_startup=[runtime.start_relay],
        after_shutdown=[runtime.close],
    )


app = create_app()
