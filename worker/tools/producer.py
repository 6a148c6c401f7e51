"""`python -m worker produce FILE.jsonl`: validate turns line by line, publish them keyed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from schemas import ConversationTurn
from worker.errors import ConfigurationError, TransientError
from worker.ingest.decoding import describe
from worker.settings import Settings


@dataclass(kw_only=True)
class TurnFile:
    valid: list[tuple[ConversationTurn, bytes]] = field(default_factory=list)  # with the line
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)


def read_turns(path: Path, *, max_turn_chars: int) -> TurnFile:
    try:
        lines = path.read_bytes().splitlines()
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error.strerror}") from None
    result = TurnFile()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            turn = ConversationTurn.model_validate_json(
                line, context={"max_turn_chars": max_turn_chars}
            )
        except ValidationError as error:
            result.problems.append((number, describe(error)))
        else:
            result.valid.append((turn, line.strip()))
    return result


async def publish_turns(turns: list[tuple[ConversationTurn, bytes]], settings: Settings) -> int:
    """Publish each line as it was written, keyed by its conversation; returns the count."""
    records = [(str(turn.key).encode(), line) for turn, line in turns]
    return await publish(records, topic=settings.turn_topic, settings=settings)


async def publish(records: list[tuple[bytes, bytes]], *, topic: str, settings: Settings) -> int:
    """Publish `(key, value)` records to `topic` and wait until all are acknowledged."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_idempotence=settings.kafka_enable_idempotence,
        acks="all",
        linger_ms=10,
    )
    try:
        await producer.start()
    except KafkaError as error:
        await producer.stop()
        raise TransientError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {error}"
        ) from None
    try:
        futures = [await producer.send(topic, value=value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(records)
