"""Each record is decoded on its own; a bad one becomes a specific dead letter."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

from aiokafka import TopicPartition

from schemas import ConversationTurn, DeadLetter
from tests.builders import Record
from tests.harness import turn
from worker.ingest.consumer import first_offsets, next_offsets
from worker.ingest.decoding import (
    DEAD_LETTER_HEAD_BYTES,
    decode_batch,
    decode_record,
    fitted,
)
from worker.tools.dead_letters import Found, revalidate


def good_value(text: str = "hello") -> bytes:
    return json.dumps(turn(uuid.uuid4(), "acme", "jane", 0, text)).encode()


def test_valid_record_becomes_a_turn() -> None:
    assert isinstance(
        decode_record(Record(value=good_value()), max_turn_chars=100), ConversationTurn
    )


def test_invalid_json_is_dead_lettered_with_its_position() -> None:
    letter = decode_record(Record(value=b"{nope", partition=3, offset=42), max_turn_chars=100)
    assert isinstance(letter, DeadLetter)
    assert (letter.error, letter.partition, letter.offset, letter.value) == (
        "invalid_json",
        3,
        42,
        "{nope",
    )


def test_non_utf8_value_is_kept_as_base64() -> None:
    raw = b"\xff\xfe\x00binary"
    letter = decode_record(Record(value=raw, key=None), max_turn_chars=100)
    assert isinstance(letter, DeadLetter)
    assert letter.value_encoding == "base64" and base64.b64decode(letter.value) == raw
    assert letter.key is None


def test_json_that_is_not_an_object_is_an_invalid_event() -> None:
    letter = decode_record(Record(value=b"[1, 2]"), max_turn_chars=100)
    assert isinstance(letter, DeadLetter) and letter.error == "invalid_event"


def test_text_over_the_limit_is_too_large_and_detail_does_not_echo_it() -> None:
    letter = decode_record(Record(value=good_value(text="secret " * 30)), max_turn_chars=100)
    assert isinstance(letter, DeadLetter) and letter.error == "too_large"
    assert "secret" not in letter.detail


def test_missing_field_names_the_field() -> None:
    payload = json.loads(good_value())
    del payload["speaker"]
    letter = decode_record(Record(value=json.dumps(payload).encode()), max_turn_chars=100)
    assert isinstance(letter, DeadLetter) and letter.error == "invalid_event"
    assert letter.detail.startswith("speaker:")


def test_one_bad_record_does_not_fail_the_batch() -> None:
    batch = decode_batch(
        [
            Record(value=good_value()),
            Record(value=b"bad", offset=1),
            Record(value=good_value(), offset=2),
        ],
        max_turn_chars=100,
    )
    assert len(batch.turns) == 2 and len(batch.dead_letters) == 1


def test_commit_and_redelivery_offsets_span_every_partition_of_the_batch() -> None:
    records = [
        Record(value=b"", partition=p, offset=o) for p, o in [(0, 5), (1, 9), (0, 7), (1, 8)]
    ]
    assert next_offsets(records) == {
        TopicPartition("conversation.turn", 0): 8,
        TopicPartition("conversation.turn", 1): 10,
    }
    assert first_offsets(records) == {
        TopicPartition("conversation.turn", 0): 5,
        TopicPartition("conversation.turn", 1): 8,
    }


MIB = 1024 * 1024


def fitted_letter(raw: bytes, key: bytes = b"k") -> DeadLetter:
    letter = decode_record(Record(value=raw, key=key), max_turn_chars=20_000)
    assert isinstance(letter, DeadLetter)
    return fitted(letter, key, max_request_bytes=MIB)


def published_size(letter: DeadLetter) -> int:
    return len(letter.model_dump_json().encode())


def test_a_dead_letter_of_a_binary_record_near_the_limit_keeps_its_head_size_and_hash() -> None:
    raw = b"\xff" + bytes(range(256)) * 3500  # 896,001 bytes, not UTF-8: base64 would be 1.2 MB
    letter = fitted_letter(raw)
    assert published_size(letter) < 16 * 1024
    assert (letter.value_encoding, letter.value_truncated) == ("base64", True)
    assert base64.b64decode(letter.value, validate=True) == raw[:DEAD_LETTER_HEAD_BYTES]
    assert letter.value_size == len(raw)
    assert letter.value_sha256 == hashlib.sha256(raw).hexdigest()


def test_a_dead_letter_of_escaped_quotes_is_cut_to_its_head() -> None:
    raw = b'"' + b'\\"' * 450_000 + b'"'  # a JSON string: 0.9 MB that escapes to 1.8 MB
    letter = fitted_letter(raw)
    assert letter.error == "invalid_event"
    assert (letter.value_encoding, letter.value_truncated) == ("utf-8", True)
    assert letter.value.encode() == raw[:DEAD_LETTER_HEAD_BYTES]
    assert (letter.value_size, letter.value_sha256) == (len(raw), hashlib.sha256(raw).hexdigest())
    assert published_size(letter) < 64 * 1024


def test_a_utf8_head_is_cut_between_characters() -> None:
    raw = json.dumps({"text": "\u20ac" * 400_000}, ensure_ascii=False).encode()  # 3 bytes each
    letter = fitted_letter(raw)
    head = letter.value.encode()
    assert letter.value_truncated and raw.startswith(head)
    assert DEAD_LETTER_HEAD_BYTES - 3 < len(head) <= DEAD_LETTER_HEAD_BYTES


def test_a_dead_letter_that_fits_is_left_whole() -> None:
    raw = b"x" * 900_000  # not JSON; copied as it is, it fits 1 MiB
    letter = fitted_letter(raw)
    assert (letter.value, letter.value_truncated, letter.value_size) == (raw.decode(), False, None)


def test_dlq_replay_refuses_a_truncated_letter_and_says_what_it_was() -> None:
    raw = b"\xff" + bytes(range(256)) * 3500
    checked = revalidate([Found(where="dlq:1", letter=fitted_letter(raw))], max_turn_chars=100)
    [(_, why)] = checked.invalid
    assert checked.valid == [] and f"head of a {len(raw)}-byte record" in why
