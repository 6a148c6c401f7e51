"""`python -m worker dlq list|replay`: inspect the dead-letter topic, re-publish fixed turns.

`list` prints one line per dead letter (position, reason, source, key, detail); `--json` prints
the dead letters themselves, original payload included, one per line. `replay` validates each
dead letter's payload again with the current settings (a raised MAX_TURN_CHARS, a fixed
schema) and publishes the ones that now pass to TURN_TOPIC, keyed by conversation; with
`--file` it reads dead letters from a file instead (what `list --json` printed, with the
payloads fixed by hand). Replaying is safe to repeat: the worker dedupes turns by event_id.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from schemas import ConversationTurn, DeadLetter
from worker.errors import ConfigurationError, TransientError
from worker.ingest.decoding import describe
from worker.settings import Settings
from worker.tools.producer import publish_turns

FETCH_TIMEOUT_MS = 1000
READ_TIMEOUT_S = 120.0


@dataclass(frozen=True, kw_only=True)
class Found:
    where: str  # "partition:offset" in the dead-letter topic, or "file:line"
    letter: DeadLetter


async def read_topic(settings: Settings) -> list[Found]:
    """Every dead letter from the beginning to the current end; no consumer group, no commit."""
    # No group, so nothing committed: "earliest" starts every assigned partition at its
    # beginning. (Assigning with the default "latest" and seeking back raced the fetcher's own
    # reset and could leave a partition unread.)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        await consumer.start()
        topics = await consumer.topics()
    except KafkaError as error:
        await consumer.stop()
        raise TransientError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}") from error
    try:
        if settings.dlq_topic not in topics:
            return []
        partitions = consumer.partitions_for_topic(settings.dlq_topic) or set()
        async with asyncio.timeout(READ_TIMEOUT_S):
            return await _read_all(
                consumer, [TopicPartition(settings.dlq_topic, p) for p in sorted(partitions)]
            )
    except TimeoutError:
        where = settings.dlq_topic
        raise TransientError(f"{where} not read to its end within {READ_TIMEOUT_S}s") from None
    finally:
        await consumer.stop()


async def _read_all(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> list[Found]:
    consumer.assign(partitions)
    reached = await consumer.beginning_offsets(partitions)
    ends = await consumer.end_offsets(partitions)
    found: list[Found] = []
    # Progress is counted from the records returned: `position()` may already stand past
    # records the fetcher holds but getmany has not returned yet.
    while any(reached[tp] < ends[tp] for tp in partitions):
        batches = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS)
        for tp, records in batches.items():
            for record in (r for r in records if r.offset < ends[tp]):
                reached[tp] = record.offset + 1
                where = f"{record.partition}:{record.offset}"
                if (letter := _parse(record.value or b"", where)) is not None:
                    found.append(Found(where=where, letter=letter))
    return sorted(found, key=lambda f: f.letter.failed_at)


def _parse(raw: bytes | str, where: str) -> DeadLetter | None:
    try:
        return DeadLetter.model_validate_json(raw)
    except ValidationError as error:
        print(f"{where}: not a dead letter ({describe(error)})", file=sys.stderr)
        return None


def read_file(path: Path) -> list[Found]:
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error.strerror}") from None
    where = [f"{path.name}:{n}" for n in range(1, len(lines) + 1)]
    parsed = [(w, _parse(line, w)) for w, line in zip(where, lines, strict=True) if line.strip()]
    return [Found(where=w, letter=letter) for w, letter in parsed if letter is not None]


def render(found: Sequence[Found]) -> str:
    lines = [f"{len(found)} dead letter(s)"]
    for f in found:
        letter = f.letter
        source = f"{letter.topic}[{letter.partition}]@{letter.offset}"
        lines.append(
            f"{f.where}  {letter.failed_at:%Y-%m-%dT%H:%M:%SZ}  {letter.error:<13} "
            f"{source}  key={letter.key or '-'}  {letter.detail[:160]}"
        )
    return "\n".join(lines)


def payload(letter: DeadLetter) -> bytes:
    if letter.value_encoding == "base64":
        try:
            return base64.b64decode(letter.value, validate=True)
        except binascii.Error:
            return b""
    return letter.value.encode()


def truncated(letter: DeadLetter) -> str:
    return (
        f"holds only the head of a {letter.value_size}-byte record (sha256 "
        f"{letter.value_sha256}): replay it from its source"
    )


@dataclass(kw_only=True)
class Replay:
    valid: list[tuple[ConversationTurn, bytes]]
    invalid: list[tuple[Found, str]]


def revalidate(found: Sequence[Found], *, max_turn_chars: int) -> Replay:
    """Each original record once (a letter may have been written twice), validated anew."""
    replay = Replay(valid=[], invalid=[])
    seen: set[tuple[str, int, int]] = set()
    for f in found:
        origin = (f.letter.topic, f.letter.partition, f.letter.offset)
        if origin in seen:
            continue
        seen.add(origin)
        if f.letter.value_truncated:
            replay.invalid.append((f, truncated(f.letter)))
            continue
        raw = payload(f.letter)
        try:
            context = {"max_turn_chars": max_turn_chars}
            turn = ConversationTurn.model_validate_json(raw, context=context)
        except ValidationError as error:
            replay.invalid.append((f, describe(error)))
        else:
            replay.valid.append((turn, raw))
    return replay


async def replay(found: Sequence[Found], settings: Settings, *, dry_run: bool) -> int:
    checked = revalidate(found, max_turn_chars=settings.max_turn_chars)
    for f, why in checked.invalid:
        print(f"{f.where}: still invalid: {why}", file=sys.stderr)
    published = 0 if dry_run or not checked.valid else await publish_turns(checked.valid, settings)
    verb = "would re-publish" if dry_run else "re-published"
    count = len(checked.valid) if dry_run else published
    print(
        f"{verb} {count} of {len(found)} dead letter(s) to {settings.turn_topic}; "
        f"{len(checked.invalid)} still invalid"
    )
    return 1 if checked.invalid else 0
