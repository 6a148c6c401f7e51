"""Composition root: settings → database → extractor → service → FastStream app.

`create_app` is a factory (`faststream run worker.app:create_app --factory`, and what
`python -m worker run` serves): nothing is built or connected at import. Everything with a
lifetime — the pool, the outbox relay's producer and task, the sweeper — is opened by one
lifespan in order and closed in reverse by its AsyncExitStack. The app is an `AsgiFastStream`
with `/health`, `/ready`, `/metrics` and the AsyncAPI page (worker/ops/http.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from faststream import ContextRepo
from faststream.asgi import AsgiFastStream, AsyncAPIRoute
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import REGISTRY

from schemas import DeadLetter
from worker.bootstrap import bootstrap
from worker.ingest.broker_limits import REFUSED_FOR_GOOD, check_request_limit
from worker.ingest.consumer import (
    BATCH_HANDLER,
    BatchHandler,
    register_consumer,
    require_co_partitioned,
)
from worker.ops import tracing
from worker.ops.asyncapi import contract_settings, declare_publishers, specification
from worker.ops.clock import Clock
from worker.ops.http import operational_routes
from worker.ops.logs import configure_logging
from worker.ops.readiness import ConsumerProgress, Readiness
from worker.qualify.deferred_extraction_scheduler import LEFTOVERS, ExtractionScheduler
from worker.qualify.inactivity import InactivitySweeper
from worker.qualify.service import QualificationService
from worker.qualify.sweeper import PendingSweeper
from worker.settings import Settings, load_settings
from worker.store.database import Database
from worker.store.outbox import Message, NotPublished, OutboxRelay, PublishMany
from worker.store.retention import TurnTextRetention

DATABASE = "database"  # FastStream context key: what /ready pings


def create_app(settings: Settings | None = None) -> AsgiFastStream:
    # `python -m worker run` hands over the settings it loaded; `faststream run --factory` none.
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.log_format)
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        enable_idempotence=settings.kafka_enable_idempotence,
        # The dead letters' producer: BatchHandler fits every letter to this limit.
        max_request_size=settings.kafka_max_request_bytes,
        # FastStream's per-message "Received/Processed" lines would double our batch log line.
        log_level=logging.DEBUG,
        # Through the root handler (worker/ops/logs.py): its warnings are JSON lines on stderr.
        logger=logging.getLogger("worker.broker"),
        middlewares=[KafkaPrometheusMiddleware(registry=REGISTRY, app_name="qualification-worker")],
    )
    register_consumer(
        broker,
        turn_topic=settings.turn_topic,
        override_topic=settings.override_topic,
        group_id=settings.consumer_group,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        max_partition_fetch_bytes=settings.kafka_max_partition_fetch_bytes,
    )
    declare_publishers(broker, settings)
    progress = ConsumerProgress(stall_s=settings.ready_stall_s)
    readiness = Readiness(
        broker=broker, progress=progress, database=lambda: broker.context.get(DATABASE)
    )

    @contextlib.asynccontextmanager
    async def lifespan(context: ContextRepo) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await _open(stack, settings, broker, progress)
            yield

    return AsgiFastStream(
        broker,
        asgi_routes=operational_routes(readiness),
        logger=logging.getLogger("worker.app"),
        # The page only: no "try it out" endpoint that would publish to production topics.
        asyncapi_path=AsyncAPIRoute("/docs/asyncapi", try_it_out_path=None),
        specification=specification(),
        lifespan=lifespan,
    )


async def _open(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    broker: KafkaBroker,
    progress: ConsumerProgress,
) -> None:
    """Everything the worker runs with, in order; the stack closes it in reverse."""
    await require_co_partitioned(
        settings.kafka_bootstrap_servers,
        turn_topic=settings.turn_topic,
        override_topic=settings.override_topic,
    )
    tracing.configure_tracing()
    stack.callback(tracing.shutdown_tracing)
    progress.started_at = progress.clock()
    components = await stack.enter_async_context(bootstrap(settings))
    database = components.database
    await database.require_migrated()
    await check_request_limit(
        settings.kafka_bootstrap_servers,
        [settings.update_topic, settings.dlq_topic],
        settings.kafka_max_request_bytes,
    )
    service = components.service()
    broker.context.set_global(DATABASE, database)
    broker.context.set_global(BATCH_HANDLER, _batch_handler(settings, broker, service, progress))
    producer = await stack.enter_async_context(_producer(settings))
    relay = OutboxRelay(
        pool=database.pool,
        database_url=settings.database_url,
        publish_many=kafka_publisher(producer),
        poll_interval_s=settings.outbox_poll_interval_s,
    )
    await stack.enter_async_context(_running(relay.run, "outbox-relay", cancel=False))
    await _start_sweepers(stack, settings, database, service, clock=components.clock)


def _batch_handler(
    settings: Settings,
    broker: KafkaBroker,
    service: QualificationService,
    progress: ConsumerProgress,
) -> BatchHandler:
    return BatchHandler(
        process_batch=service.process_batch,
        publish_dead_letter=_dead_letter_publisher(broker, settings.dlq_topic),
        max_turn_chars=settings.max_turn_chars,
        override_topic=settings.override_topic,
        max_request_bytes=settings.kafka_max_request_bytes,
        backoff_s=settings.redelivery_backoff_s,
        on_committed=progress.committed,
    )


async def _start_sweepers(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    database: Database,
    service: QualificationService,
    *,
    clock: Clock,
) -> None:
    """The background tasks the settings turn on. The sweepers are cancelled, not awaited, at
    the end: each round is short transactions, and a pending sweep mid-extraction would
    otherwise wait out the LLM's retry budget. The deferred extraction scheduler drains itself;
    it runs whatever EXTRACT_DEBOUNCE_MS says, so turns deferred before it was set back to 0
    are extracted too.
    """
    if settings.pending_sweep_interval_s > 0:
        pending = PendingSweeper(
            database=database,
            reextract=service.reextract,
            interval_s=settings.pending_sweep_interval_s,
            quiet_s=settings.pending_quiet_s,
        )
        await stack.enter_async_context(_running(pending.run, "pending-sweeper", cancel=True))
    if settings.stall_after_days > 0 and settings.stall_sweep_interval_s > 0:
        inactivity = InactivitySweeper(
            database=database,
            update_topic=settings.update_topic,
            stall_after_days=settings.stall_after_days,
            interval_s=settings.stall_sweep_interval_s,
            criteria=settings.stage_criteria,
            clock=clock,
        )
        await stack.enter_async_context(_running(inactivity.run, "inactivity-sweeper", cancel=True))
    if settings.turn_text_retention_days > 0:
        retention = TurnTextRetention(
            database=database,
            retention_days=settings.turn_text_retention_days,
            interval_s=settings.turn_text_retention_interval_s,
            clock=clock,
        )
        await stack.enter_async_context(_running(retention.run, "text-retention", cancel=True))
    # Always on: with EXTRACT_DEBOUNCE_MS set back to 0 it drains the turns deferred before.
    scheduler = ExtractionScheduler(
        database=database,
        extract=service.extract_deferred,
        debounce=service.debounce or LEFTOVERS,
        concurrency=settings.llm_concurrency,
        poll_interval_s=settings.extract_poll_interval_ms / 1000,
        clock=clock,
    )
    # Not cancelled: it drains itself (in-flight extractions finish or release their claims).
    await stack.enter_async_context(_running(scheduler.run, "extraction-scheduler", cancel=False))


@contextlib.asynccontextmanager
async def _producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    """The outbox relay's own producer (acks=all), separate from the broker's."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_idempotence=settings.kafka_enable_idempotence,
        acks="all",
        linger_ms=5,
        max_request_size=settings.kafka_max_request_bytes,
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def _running(
    run: Callable[[asyncio.Event], Coroutine[Any, Any, None]], name: str, *, cancel: bool
) -> AsyncIterator[None]:
    """A background task for the block: asked to stop at its end (and cancelled if `cancel`),
    then awaited, so nothing outlives the lifespan."""
    stop = asyncio.Event()
    task = asyncio.create_task(run(stop), name=name)
    try:
        yield
    finally:
        stop.set()
        if cancel:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def kafka_publisher(producer: AIOKafkaProducer) -> PublishMany:
    """The relay's publish: every message sent in order, each one's outcome reported on its
    own, so one the broker refuses does not hide that the others went out."""

    async def publish_many(messages: Sequence[Message]) -> list[NotPublished | None]:
        sent: list[asyncio.Future[Any]] = []
        for topic, key, value, headers in messages:
            try:
                sent.append(await producer.send(topic, value=value, key=key, headers=headers))
            except REFUSED_FOR_GOOD as error:  # over max_request_size: it never left
                sent.append(_failed(error))
            # Any other error here (no metadata: the broker is unreachable) is raised, and the
            # relay tries the whole claim again later rather than wait on each message.
        outcomes = await asyncio.gather(*sent, return_exceptions=True)
        return [_not_published(outcome) for outcome in outcomes]

    return publish_many


def _failed(error: Exception) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_exception(error)
    return future


def _not_published(outcome: object) -> NotPublished | None:
    if not isinstance(outcome, BaseException):
        return None
    if not isinstance(outcome, KafkaError):
        raise outcome  # not the broker's answer: a bug, never a row's fate
    return NotPublished(
        error=type(outcome).__name__, about_the_message=isinstance(outcome, REFUSED_FOR_GOOD)
    )


def _dead_letter_publisher(
    broker: KafkaBroker, topic: str
) -> Callable[[DeadLetter, bytes | None], Awaitable[None]]:
    async def publish(letter: DeadLetter, key: bytes | None) -> None:
        await broker.publish(
            letter.model_dump_json().encode(),
            topic=topic,
            key=key,
            headers={"content-type": "application/json"},
        )

    return publish


def document_app() -> AsgiFastStream:
    """The app `make docs` documents, for the contract's default topics (a factory)."""
    return create_app(contract_settings())
