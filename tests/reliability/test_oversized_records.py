"""Records almost as large as the broker takes, ahead of good turns on the same partitions.

Copied whole into a dead letter, such a record outgrows the producer's 1 MiB request limit
(base64 by 4/3, escaped quotes twice over): its publish failed and the batch was redelivered
forever, so the good turns behind it were never applied. Now the dead letter carries the
record's head, size and sha256, and every good turn is applied. A record whose dead letter
cannot fit at all (its key alone is 0.9 MB) is logged by its position and skipped.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any

from tests.harness import TopicReader, Topics, key_of, produce, turn
from tests.reliability.support import (
    DatabaseProbe,
    QuotingLLM,
    Workers,
    describe_problems,
    settle,
    verify_end_state,
)
from tests.waiting import eventually
from worker.ingest.decoding import DEAD_LETTER_HEAD_BYTES

TENANT = uuid.UUID("2b8e4f1a-9c3d-4e5f-8a7b-6c5d4e3f2a1b")
HUGE_KEY = b"k" * 900_000  # copied into the letter and used as its key: 1.8 MB, over any head


def binary_record() -> bytes:
    """0.9 MB that is not UTF-8: its dead letter would hold 1.2 MB of base64."""
    return b"\xff\xfe" + bytes(range(256)) * 3515


def quoted_record() -> bytes:
    """0.9 MB of JSON: a string of escaped quotes, 1.8 MB once escaped again in a letter."""
    return b'"' + b'\\"' * 450_000 + b'"'


def good_turns() -> list[dict[str, Any]]:
    return [
        turn(TENANT, "big", f"c-{c}", s, f"Turn {s} of {c}: we need faster reporting.")
        for s in range(3)
        for c in range(8)
    ]


async def test_records_near_the_size_limit_are_dead_lettered_and_the_turns_behind_applied(
    workers: Workers,
    llm: QuotingLLM,
    probe: DatabaseProbe,
    database_url: str,
    kafka_bootstrap_servers: str,
    topics: Topics,
) -> None:
    good = good_turns()
    bad = {key_of(good[0]): binary_record(), key_of(good[1]): quoted_record()}
    assert all(850_000 < len(value) < 1_000_000 for value in bad.values())
    async with (
        TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.dlq) as dlq,
        TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates) as updates,
    ):
        # The two large records first, keyed like good conversations: on their partitions, every
        # good turn of those conversations comes after them.
        await produce(kafka_bootstrap_servers, topics.turns, list(bad.items()))
        await produce(kafka_bootstrap_servers, topics.turns, [(HUGE_KEY, b"not json")])
        await produce(kafka_bootstrap_servers, topics.turns, good)
        worker = workers.start()
        await eventually(dlq.count, lambda n: n >= 2, within_s=60, what="two dead letters")
        await settle(probe, updates, expected_turns=len(good), within_s=60)
        problems = await verify_end_state(database_url, good, updates)

    assert problems == [], describe_problems(problems)
    assert len(dlq.records) == 2
    for (key, raw_letter, _), letter in zip(dlq.records, dlq.json_values(), strict=True):
        assert len(raw_letter) < 16 * 1024, "a head, not the whole record"
        original = bad[key or b""]
        head = (
            base64.b64decode(letter["value"])
            if letter["value_encoding"] == "base64"
            else letter["value"].encode()
        )
        assert letter["value_truncated"] is True
        assert head == original[:DEAD_LETTER_HEAD_BYTES]
        assert letter["value_size"] == len(original)
        assert letter["value_sha256"] == hashlib.sha256(original).hexdigest()
    errors = sorted(letter["error"] for letter in dlq.json_values())
    assert errors == ["invalid_event", "invalid_json"]
    [unpublished] = [
        line
        for line in (json.loads(text) for text in worker.log_text().splitlines() if text[:1] == "{")
        if line.get("event") == "dead_letter_not_published"
    ]
    assert unpublished["offset"] == 0 and unpublished["error"] == "MessageSizeTooLargeError"
    assert "kkkk" not in json.dumps(unpublished), "its position only, never its content"
