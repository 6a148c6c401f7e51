"""Decoding consumed records one by one: a turn or an override, or a dead letter saying why not.

A bad record never fails its batch: it becomes a `DeadLetter` with its position and original
value, and the rest of the batch goes on. A dead letter always fits the producer's request
limit: when the original value would not, the letter carries its head, size and sha256 only.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson
from pydantic import ValidationError

from schemas import ConversationTurn, DeadLetter, QualificationOverride
from schemas.events import TOO_LARGE
from worker.ops.clock import utc_now
from worker.qualify.outcomes import DeadLetterDecision, Event, EventRef, event_ref

E = TypeVar("E", ConversationTurn, QualificationOverride)

# What a truncated dead letter keeps of the original value: enough to recognise the record.
DEAD_LETTER_HEAD_BYTES = 4096
# A produce request's bytes beyond the letter's JSON and key: the record batch's header and
# the record's own framing (under 100 bytes), the content-type header, with room to spare.
RECORD_OVERHEAD_BYTES = 1024


class Record(Protocol):
    """The parts of an aiokafka ConsumerRecord the worker reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, kw_only=True)
class DecodedBatch:
    decoded: list[tuple[Record, Event]]
    dead_letters: list[tuple[DeadLetter, bytes | None]]  # with the original key

    @property
    def events(self) -> list[Event]:
        return [event for _, event in self.decoded]

    @property
    def turns(self) -> list[ConversationTurn]:
        return [e for _, e in self.decoded if isinstance(e, ConversationTurn)]

    def decided(
        self, decisions: Mapping[EventRef, DeadLetterDecision]
    ) -> list[tuple[DeadLetter, bytes | None]]:
        """Dead letters for the records of the events processing decided to refuse."""
        letters = []
        for record, event in self.decoded:
            if (decision := decisions.get(event_ref(event))) is not None:
                letters.append((dead_letter(record, decision.reason, decision.detail), record.key))
        return letters


def decode_override(record: Record) -> QualificationOverride | DeadLetter:
    """A record of OVERRIDE_TOPIC: a person's correction, or why it cannot be applied."""
    return _validated(record, QualificationOverride, context=None)


def decode_record(record: Record, *, max_turn_chars: int) -> ConversationTurn | DeadLetter:
    """A record of TURN_TOPIC: a chat turn, or why it cannot be applied."""
    return _validated(record, ConversationTurn, context={"max_turn_chars": max_turn_chars})


def _validated(record: Record, model: type[E], *, context: dict[str, Any] | None) -> E | DeadLetter:
    try:
        payload = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError as error:
        return dead_letter(record, "invalid_json", f"not valid JSON: {error}")
    if not isinstance(payload, dict):
        return dead_letter(
            record, "invalid_event", f"expected a JSON object, got {type(payload).__name__}"
        )
    try:
        return model.model_validate(payload, context=context)
    except ValidationError as error:
        reason = (
            "too_large" if any(e["type"] == TOO_LARGE for e in error.errors()) else "invalid_event"
        )
        return dead_letter(record, reason, describe(error))
    except Exception as error:  # a validator that broke on this input
        # Raised out of here, it would fail the whole batch outside the handler's guard, and
        # FastStream would skip the batch without committing or dead-lettering any of it.
        return dead_letter(record, "invalid_event", f"could not validate: {type(error).__name__}")


def describe(error: ValidationError) -> str:
    """`field: message; …` without echoing the input (it may be huge or personal)."""
    parts = [f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in error.errors()]
    return "; ".join(parts)[:1000]


def dead_letter(record: Record, error: Any, detail: str) -> DeadLetter:
    raw = record.value or b""
    try:
        value, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        value, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    key = record.key.decode("utf-8", errors="replace") if record.key is not None else None
    return DeadLetter(
        error=error,
        detail=detail,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=key,
        value=value,
        value_encoding=encoding,
        failed_at=utc_now(),
    )


def fitted(letter: DeadLetter, key: bytes | None, *, max_request_bytes: int) -> DeadLetter:
    """`letter` as it is when it fits a produce request of `max_request_bytes`; otherwise with
    `value` cut to the original's first DEAD_LETTER_HEAD_BYTES (on a character boundary for
    UTF-8; base64 of whole bytes otherwise) and the original's size and sha256.

    The original may be almost as large as the limit and its copy larger: base64 grows it by
    4/3, JSON escaping of quotes or control characters up to 6 times."""
    size = len(letter.model_dump_json().encode()) + len(key or b"") + RECORD_OVERHEAD_BYTES
    if size <= max_request_bytes:
        return letter
    raw = original_value(letter)
    head = raw[:DEAD_LETTER_HEAD_BYTES]
    value = (
        base64.b64encode(head).decode("ascii")
        if letter.value_encoding == "base64"
        # The original is valid UTF-8: only a character cut in two at the end can be invalid.
        else head.decode("utf-8", errors="ignore")
    )
    return letter.model_copy(
        update={
            "value": value,
            "value_truncated": True,
            "value_size": len(raw),
            "value_sha256": hashlib.sha256(raw).hexdigest(),
        }
    )


def original_value(letter: DeadLetter) -> bytes:
    """The bytes of the record a (whole) dead letter was made from."""
    if letter.value_encoding == "base64":
        return base64.b64decode(letter.value)
    return letter.value.encode()


def decode_batch(
    records: Sequence[Record], *, max_turn_chars: int, override_topic: str | None = None
) -> DecodedBatch:
    """Each record on its own: a turn, an override (records of `override_topic`), or a dead
    letter."""
    events: list[tuple[Record, Event]] = []
    dead: list[tuple[DeadLetter, bytes | None]] = []
    for record in records:
        decoded: Event | DeadLetter = (
            decode_override(record)
            if record.topic == override_topic
            else decode_record(record, max_turn_chars=max_turn_chars)
        )
        if isinstance(decoded, DeadLetter):
            dead.append((decoded, record.key))
        else:
            events.append((record, decoded))
    return DecodedBatch(decoded=events, dead_letters=dead)
