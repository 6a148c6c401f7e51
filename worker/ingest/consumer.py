"""The FastStream subscriber on `conversation.turn` and `qualification.override`, and the only
place that decides between committing offsets and asking for redelivery.

Records are decoded one by one (a bad record is dead-lettered, never fails its batch); offsets
are committed only after every conversation of the batch is stored in PostgreSQL. The two topics
are co-partitioned: partition *i* of both goes to one group member (range assignment, equal
partition counts checked at start-up), so a conversation's turns and overrides meet in one worker.
A dead letter the broker refuses for good (too large for it, say) is logged by its position and
skipped: a bad record never stops the good ones behind it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

import structlog
from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from faststream import AckPolicy, Context
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import GetJsonSchemaHandler, TypeAdapter
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from schemas import ConversationTurn, DeadLetter, QualificationOverride
from worker.errors import ConfigurationError
from worker.ingest.broker_limits import REFUSED_FOR_GOOD
from worker.ingest.decoding import DecodedBatch, Record, decode_batch, fitted
from worker.ops import metrics, tracing
from worker.qualify.outcomes import BatchOutcome, Event

log = structlog.get_logger(__name__)

MAX_BACKOFF_S = 30.0

# Range assignment gives partition i of every subscribed topic to the same member when the topics
# have equal partition counts (`require_co_partitioned`), so a conversation's turns and overrides
# meet in one worker; aiokafka's default, round-robin, splits them. Range only: the embedded
# broker refuses a group whose members offer different strategy lists (InconsistentGroupProtocol),
# so a fallback offered for rolling upgrades would not help there (docs/operations.md, Scaling).
ASSIGNORS = (RangePartitionAssignor,)


class ProcessBatch(Protocol):
    async def __call__(self, events: Sequence[Event]) -> BatchOutcome: ...


PublishDeadLetter = Callable[[DeadLetter, bytes | None], Awaitable[None]]
# The name under which the lifespan puts the BatchHandler into FastStream's context.
BATCH_HANDLER = "batch_handler"


class DocumentedAs:
    """`Annotated[Any, DocumentedAs(Type)]`: document a handler parameter as `Type` (a model or
    a union of models) without validating it (the batch handler decodes each record itself)."""

    def __init__(self, documented: Any) -> None:
        self.core_schema = TypeAdapter(documented).core_schema

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(self.core_schema)


def next_offsets(records: Sequence[Record]) -> dict[TopicPartition, int]:
    """Per partition, the offset after the batch's last record: what a commit stores."""
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
    return offsets


def first_offsets(records: Sequence[Record]) -> dict[TopicPartition, int]:
    """Per partition, the batch's first offset: where a redelivery starts."""
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        offsets[tp] = min(offsets.get(tp, r.offset), r.offset)
    return offsets


@dataclass(kw_only=True)
class BatchHandler:
    process_batch: ProcessBatch
    publish_dead_letter: PublishDeadLetter
    max_turn_chars: int
    override_topic: str
    max_request_bytes: int  # KAFKA_MAX_REQUEST_BYTES: every dead letter is fitted to it
    backoff_s: float
    on_committed: Callable[[Any], Awaitable[None]]  # given the consumer, after each commit
    _failures_in_a_row: int = field(default=0, init=False)

    async def handle(self, records: Sequence[Record], consumer: Any) -> bool:
        """Process one batch; True when its offsets were committed."""
        with tracing.span("batch", records=len(records)) as span:
            committed = await self._handle(records, consumer, time.perf_counter())
            span.set_attribute("committed", committed)
        metrics.BATCHES.labels(outcome="committed" if committed else "not_committed").inc()
        return committed

    async def _handle(self, records: Sequence[Record], consumer: Any, started: float) -> bool:
        decoded = decode_batch(
            records, max_turn_chars=self.max_turn_chars, override_topic=self.override_topic
        )
        try:
            outcome = await self.process_batch(decoded.events)
            letters = [*decoded.dead_letters, *decoded.decided(outcome.dead_letters())]
            # Those the broker took: what the batch's log line and metrics count.
            dead_letters = [
                (letter, key)
                for letter, key in letters
                if await self._publish_dead_letter(letter, key)
            ]
        except Exception as error:  # transient or not, redelivery loses nothing
            await self._redeliver_later(records, consumer, error)
            return False
        self._failures_in_a_row = 0
        self._log_batch(records, decoded, outcome, dead_letters, time.perf_counter() - started)
        if not await self._commit(records, consumer):
            return False
        await self.on_committed(consumer)
        return True

    async def _publish_dead_letter(self, letter: DeadLetter, key: bytes | None) -> bool:
        """Publish the letter fitted to the request limit; False when the broker refused it.

        A refusal that no retry can change (a broker whose own limit is lower, a key too long
        to fit) is logged with the record's position, never its content, and the batch goes
        on; anything else (the broker is unreachable) raises, and the batch is redelivered."""
        try:
            await self.publish_dead_letter(
                fitted(letter, key, max_request_bytes=self.max_request_bytes), key
            )
            return True
        except REFUSED_FOR_GOOD as error:
            log.error(
                "dead_letter_not_published",
                topic=letter.topic,
                partition=letter.partition,
                offset=letter.offset,
                reason=letter.error,
                error=type(error).__name__,
            )
            metrics.DEAD_LETTERS_UNPUBLISHED.labels(reason=letter.error).inc()
            return False

    async def _redeliver_later(
        self, records: Sequence[Record], consumer: Any, error: Exception
    ) -> None:
        self._failures_in_a_row += 1
        delay = min(self.backoff_s * 2 ** (self._failures_in_a_row - 1), MAX_BACKOFF_S)
        log.warning(
            "batch_not_committed",
            records=len(records),
            error=type(error).__name__,
            detail=str(error)[:300],
            retry_in_s=delay,
            failures_in_a_row=self._failures_in_a_row,
        )
        await asyncio.sleep(delay)
        for tp, offset in first_offsets(records).items():
            try:
                consumer.seek(tp, offset)
            except (IllegalStateError, KafkaError, AssertionError):
                pass  # revoked meanwhile: its new owner starts from the last commit anyway

    async def _commit(self, records: Sequence[Record], consumer: Any) -> bool:
        try:
            await consumer.commit(next_offsets(records))
        except (CommitFailedError, IllegalStateError, KafkaError) as error:
            # A rebalance took the partitions: the new owner redelivers, event_ids dedupe.
            log.warning("offset_commit_failed", error=type(error).__name__)
            return False
        return True

    def _log_batch(
        self,
        records: Sequence[Record],
        decoded: DecodedBatch,
        outcome: BatchOutcome,
        dead: list[tuple[DeadLetter, bytes | None]],
        seconds: float,
    ) -> None:
        log.info(
            "batch_committed",
            records=len(records),
            turns=len(decoded.turns),
            overrides=len(decoded.events) - len(decoded.turns),
            overrides_applied=outcome.overrides_applied,
            applied=outcome.applied,
            deferred=outcome.deferred,
            duplicates=outcome.duplicates,
            dead_lettered=len(dead),
            conversations=len(outcome.conversations),
            duration_ms=round(seconds * 1000, 1),
        )
        metrics.observe_batch(
            records=len(records),
            applied=outcome.applied,
            duplicates=outcome.duplicates,
            seconds=seconds,
        )
        metrics.observe_dead_letters(letter.error for letter, _ in dead)


async def require_co_partitioned(
    bootstrap_servers: str, *, turn_topic: str, override_topic: str
) -> int:
    """The two input topics' common partition count; ConfigurationError (one line naming both
    topics and their counts) when they differ or one does not exist. A topic that does not
    exist is not created here: a broker that auto-creates it on subscription would give it
    its default count, not the other topic's."""
    counts = await _partition_counts(bootstrap_servers, (turn_topic, override_topic))
    turns, overrides = counts[turn_topic], counts[override_topic]
    if turns is None or overrides is None or turns != overrides:
        raise ConfigurationError(
            f"{_described('TURN_TOPIC', turn_topic, turns)} and "
            f"{_described('OVERRIDE_TOPIC', override_topic, overrides)}: the two need the same "
            "partition count, so that partition i of both goes to one worker (create the "
            "missing topic, or add partitions to the smaller one)"
        )
    return turns


def _described(setting: str, topic: str, partitions: int | None) -> str:
    if partitions is None:
        return f"{setting} {topic} does not exist"
    return f"{setting} {topic} has {partitions} partition{'s' if partitions != 1 else ''}"


async def _partition_counts(bootstrap_servers: str, topics: Sequence[str]) -> dict[str, int | None]:
    """Partition counts from the cluster's metadata for all topics (what `bootstrap` reads): a
    request for all topics creates none, unlike one naming them, which a broker that
    auto-creates topics answers by creating them."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, client_id="co-partitioning")
    try:
        await client.bootstrap()
    except KafkaError as error:
        raise ConfigurationError(
            f"KAFKA_BOOTSTRAP_SERVERS {bootstrap_servers}: cannot read the topics' metadata "
            f"({type(error).__name__})"
        ) from None
    finally:
        await client.close()
    counts: dict[str, int | None] = {}
    for topic in topics:
        partitions = client.cluster.partitions_for_topic(topic)
        counts[topic] = len(partitions) if partitions else None
    return counts


async def _pass_through(message: Any) -> None:
    """FastStream's default decoder JSON-parses the whole batch and fails it on one bad
    record; the handler decodes each record itself instead."""
    return None


def register_consumer(
    broker: KafkaBroker,
    *,
    turn_topic: str,
    override_topic: str,
    group_id: str,
    max_records: int,
    batch_timeout_ms: int,
    session_timeout_ms: int,
    heartbeat_interval_ms: int,
    max_partition_fetch_bytes: int,
) -> None:
    """Subscribe with manual acks: FastStream never commits; BatchHandler does.

    One subscriber for both input topics, co-partitioned (`ASSIGNORS`), so the member that
    reads a conversation's turns also reads its overrides, and a batch that holds both applies
    them in conversation order."""

    @broker.subscriber(
        turn_topic,
        override_topic,
        batch=True,
        group_id=group_id,
        max_records=max_records,
        batch_timeout_ms=batch_timeout_ms,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=heartbeat_interval_ms,
        max_partition_fetch_bytes=max_partition_fetch_bytes,
        ack_policy=AckPolicy.MANUAL,
        partition_assignment_strategy=ASSIGNORS,
        auto_offset_reset="earliest",
        decoder=_pass_through,
        title="conversation.turn + qualification.override consumer",
        description="Chat turns of B2B sales conversations (ConversationTurn JSON) and "
        "people's corrections of what was found (QualificationOverride JSON), keyed by "
        "conversation.",
    )
    async def on_turns(
        event: Annotated[Any, DocumentedAs(ConversationTurn | QualificationOverride)] = None,
        *,
        message: KafkaMessage,
        # FastStream injects what the app's lifespan put into its context.
        handler: Annotated[BatchHandler, Context(BATCH_HANDLER)],
    ) -> None:
        records = message.raw_message
        await handler.handle(
            records if isinstance(records, tuple) else (records,), message.consumer
        )
