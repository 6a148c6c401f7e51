"""Regression tests, one or more per bug the fault-injection suite found (fast: no worker
process). The end-to-end tests that found the bugs live next to this file; these pin the fixes.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from schemas import (
    ConversationKey,
    DeadLetter,
    conversation_key,
    update_event_id,
)
from schemas.events import MAX_SEQUENCE, ConversationTurn
from tests.harness import turn
from worker.consumer import decode_record

TENANT = uuid.UUID("0f4e6b3a-2c1d-4e5f-8a9b-0c1d2e3f4a5b")


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def record_of(payload: dict[str, Any] | bytes) -> Record:
    value = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Record(topic="turns", partition=0, offset=7, key=b"k", value=value)


def decoded(payload: dict[str, Any] | bytes, **kwargs: Any) -> ConversationTurn | DeadLetter:
    return decode_record(record_of(payload), **{"max_turn_chars": 20_000, **kwargs})


def with_raw_metadata(depth: int) -> bytes:
    body = json.dumps(turn(TENANT, "acme", "jane", 0, "hello")).encode()
    nested = b'{"d":' * depth + b"0" + b"}" * depth
    return body[:-1] + b', "metadata": ' + nested + b"}"


# --- metadata nested ~1000 levels crashed decoding, and the crash lost the whole batch --------


def test_metadata_nested_near_the_encoder_limit_is_a_dead_letter_not_a_crash() -> None:
    letter = decoded(with_raw_metadata(990))
    assert isinstance(letter, DeadLetter)
    assert letter.error == "invalid_event" and "nested deeper" in letter.detail


def test_metadata_nested_too_deep_for_the_jsonb_codec_is_a_dead_letter() -> None:
    """300 levels validated, then failed orjson (the jsonb codec) in the write transaction."""
    letter = decoded(with_raw_metadata(300))
    assert isinstance(letter, DeadLetter) and "metadata" in letter.detail


def test_reasonably_nested_metadata_is_kept() -> None:
    assert isinstance(decoded(with_raw_metadata(32)), ConversationTurn)


def test_a_validator_that_raises_dead_letters_its_record_instead_of_failing_the_batch() -> None:
    """Any exception out of decoding escaped the handler's guard, and FastStream then skipped
    the batch (no commit, no dead letter, good records lost until a restart)."""
    letter = decoded(turn(TENANT, "acme", "jane", 0, "hello"), max_turn_chars=None)
    assert isinstance(letter, DeadLetter)
    assert letter.error == "invalid_event" and "TypeError" in letter.detail


# --- values the database refused took their conversation's good turns to the DLQ -------------


def test_sequence_beyond_the_database_integer_is_invalid_on_its_own() -> None:
    assert isinstance(decoded(turn(TENANT, "a", "c", MAX_SEQUENCE, "ok")), ConversationTurn)
    letter = decoded(turn(TENANT, "a", "c", MAX_SEQUENCE + 1, "too big"))
    assert isinstance(letter, DeadLetter) and "sequence" in letter.detail


def test_timestamps_outside_the_utc_range_are_invalid_on_their_own() -> None:
    for stamp in ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"):
        letter = decoded(turn(TENANT, "a", "c", 0, "when?", occurred_at=stamp))
        assert isinstance(letter, DeadLetter) and "occurred_at" in letter.detail, stamp
    edge = turn(TENANT, "a", "c", 0, "fine", occurred_at="9999-12-31T23:59:59+00:00")
    assert isinstance(decoded(edge), ConversationTurn)


# --- colons in ids: two conversations shared a key and their update event_ids -------------------


def test_ids_with_colons_give_distinct_keys_and_event_ids() -> None:
    one = ConversationKey(TENANT, "acme:emea", "jane")
    other = ConversationKey(TENANT, "acme", "emea:jane")
    literal = ConversationKey(TENANT, "acme%3Aemea", "jane")
    keys = {str(one), str(other), str(literal)}
    assert len(keys) == 3
    assert len({update_event_id(k, 1) for k in (one, other, literal)}) == 3


def test_plain_ids_keep_the_contract_key_and_event_id() -> None:
    assert conversation_key(TENANT, "acme", "jane") == f"{TENANT}:acme:jane"
    key = ConversationKey(TENANT, "acme", "jane")
    namespace = uuid.UUID("6f1d8a52-3c1e-5b8e-9a57-2d5c7c0e4b11")
    assert update_event_id(key, 3) == uuid.uuid5(namespace, f"{TENANT}:acme:jane:3")
