"""Regression tests, one or more per bug the fault-injection suite found (fast: no worker
process). The end-to-end tests that found the bugs live next to this file; these pin the fixes.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from schemas import (
    ConversationKey,
    DeadLetter,
    DealStage,
    QualificationState,
    conversation_key,
    update_event_id,
)
from schemas.events import MAX_SEQUENCE, ConversationTurn
from tests.builders import Record, turn_text
from tests.fakes.llm_server import FakeLLMServer
from tests.harness import turn
from tests.state_store import count_turns
from tests.waiting import eventually
from worker.bootstrap import build_service
from worker.extract.circuit import CircuitBreaker
from worker.extract.llm import QualificationExtractor
from worker.extract.port import ExtractionResult
from worker.ingest.decoding import decode_record
from worker.qualify.repository import ConversationStateRepository
from worker.qualify.service import QualificationService
from worker.qualify.sweeper import SWEEP_LOCK, PendingSweeper
from worker.settings import Settings
from worker.store.database import Database

TENANT = uuid.UUID("0f4e6b3a-2c1d-4e5f-8a9b-0c1d2e3f4a5b")


def record_of(payload: dict[str, Any] | bytes) -> Record:
    value = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Record(topic="turns", offset=7, value=value)


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


# --- a dead or hanging LLM stalled partitions: every conversation spent the full budget -------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_circuit_opens_after_the_threshold_and_fails_fast() -> None:
    clock = Clock()
    circuit = CircuitBreaker(failure_threshold=3, cooldown_s=10, clock=clock)
    assert [circuit.failed() for _ in range(3)] == [False, False, True]
    assert circuit.is_open and not circuit.allow()


def test_open_circuit_lets_one_probe_through_after_the_cooldown() -> None:
    clock = Clock()
    circuit = CircuitBreaker(failure_threshold=1, cooldown_s=10, clock=clock)
    circuit.failed()
    clock.now = 9.9
    assert not circuit.allow()
    clock.now = 10.0
    assert circuit.allow()
    assert not circuit.allow(), "one probe at a time"
    assert circuit.succeeded() and not circuit.is_open
    assert circuit.allow()


def test_failed_probe_restarts_the_cooldown() -> None:
    clock = Clock()
    circuit = CircuitBreaker(failure_threshold=1, cooldown_s=10, clock=clock)
    circuit.failed()
    clock.now = 10.0
    assert circuit.allow()
    assert not circuit.failed(), "already open: not a new opening"
    clock.now = 19.9
    assert not circuit.allow()
    clock.now = 20.0
    assert circuit.allow()


def test_success_resets_the_count_of_failures_in_a_row() -> None:
    circuit = CircuitBreaker(failure_threshold=2, cooldown_s=10, clock=Clock())
    circuit.failed()
    circuit.succeeded()
    assert not circuit.failed() and not circuit.is_open


async def test_extractor_stops_calling_a_failing_provider_then_probes_and_recovers() -> None:
    async with FakeLLMServer() as server:
        server.mode = {"mode": "error", "status": 503}
        extractor = QualificationExtractor(
            model_name="openai/fake-model",
            api_base=server.base_url,
            api_key="sk-test",
            timeout_s=1.0,
            transport_attempts=1,
            retry_budget_s=2.0,
            circuit=CircuitBreaker(failure_threshold=2, cooldown_s=0.3),
        )
        results = [await extract(extractor) for _ in range(5)]
        assert [r.status for r in results] == ["failed"] * 5
        assert server.received == 2, "three extractions failed open without a request"
        assert [r.error for r in results[2:]] == ["CircuitOpen"] * 3

        server.mode = {"mode": "ok"}

        async def extract_until_ok() -> ExtractionResult:
            return await extract(extractor)

        await eventually(extract_until_ok, lambda r: r.status == "ok", within_s=5, interval=0.05)
        assert not extractor.circuit.is_open


async def test_unusable_answers_do_not_open_the_circuit() -> None:
    """The provider answering with invalid output is up: only 429/5xx/timeouts count."""
    async with FakeLLMServer() as server:
        server.reply_builder = lambda request: {"overall_confidence": "very"}
        extractor = QualificationExtractor(
            model_name="openai/fake-model",
            api_base=server.base_url,
            api_key="sk-test",
            max_retries=0,
            circuit=CircuitBreaker(failure_threshold=1, cooldown_s=60),
        )
        first = await extract(extractor)
        second = await extract(extractor)
        assert first.status == second.status == "failed"
        assert server.received == 2 and not extractor.circuit.is_open


async def extract(extractor: QualificationExtractor) -> ExtractionResult:
    text = turn_text("We need faster reporting.")
    return await extractor.extract_signals([text], QualificationState(), DealStage.PROSPECTING)


# --- turns left pending by an outage stayed pending when their conversation went quiet --------


def llm_service(database: Database, server: FakeLLMServer) -> QualificationService:
    settings = Settings(
        llm_model="openai/fake-model",
        llm_api_base=server.base_url,
        llm_api_key="sk-test",
        llm_transport_attempts=1,
        update_topic="updates",
    )
    return build_service(settings, database)


def repository_of(service: QualificationService) -> ConversationStateRepository:
    return ConversationStateRepository(database=service.database, update_topic="updates")


async def test_sweeper_extracts_the_pending_turns_of_a_quiet_conversation(
    pool: asyncpg.Pool,
) -> None:
    async with FakeLLMServer() as server:
        server.mode = {"mode": "error", "status": 503}
        service = llm_service(Database(pool), server)
        key = ConversationKey(TENANT, "acme", "quiet")
        texts = ["We need faster reporting.", "Our quarter closes in June."]
        await service.process_batch(
            [ConversationTurn.model_validate(turn(*key, n, text)) for n, text in enumerate(texts)]
        )
        assert await count_turns(service.database, key) == (2, 2)
        sweeper = PendingSweeper(database=service.database, reextract=service.reextract, quiet_s=0)

        assert await sweeper.sweep() == 0, "the LLM is still down: nothing to write"
        server.mode = {"mode": "ok"}
        assert await sweeper.sweep() == 1
        assert await sweeper.sweep() == 0, "nothing pending any more"

    assert await count_turns(service.database, key) == (2, 0)
    state = await repository_of(service).get_state(*key)
    assert state is not None and state.version == 2 and state.interaction_count == 2


async def test_one_sweeper_at_a_time(pool: asyncpg.Pool) -> None:
    """While another worker holds the sweep lock, a sweeper leaves a pending turn alone (no LLM
    request, no version); once the lock is released, the same sweeper extracts it."""
    async with FakeLLMServer() as server:
        server.mode = {"mode": "error", "status": 503}
        service = llm_service(Database(pool), server)
        key = ConversationKey(TENANT, "acme", "locked-out")
        payload = turn(*key, 0, "We need faster reporting.")
        await service.process_batch([ConversationTurn.model_validate(payload)])
        assert await count_turns(service.database, key) == (1, 1), "one turn left pending"
        server.mode = {"mode": "ok"}
        requests_before = server.received
        sweeper = PendingSweeper(database=service.database, reextract=service.reextract, quiet_s=0)

        async with pool.acquire() as holder:  # another worker's sweep in progress
            lock = "SELECT pg_try_advisory_lock(7302, hashtext($1))"
            assert await holder.fetchval(lock, SWEEP_LOCK)
            assert await sweeper.sweep() == 0
            assert server.received == requests_before, "no extraction while the lock is held"
            assert await count_turns(service.database, key) == (1, 1)
            unlock = "SELECT pg_advisory_unlock(7302, hashtext($1))"
            assert await holder.fetchval(unlock, SWEEP_LOCK)

        assert await sweeper.sweep() == 1
        assert server.received == requests_before + 1

    assert await count_turns(service.database, key) == (1, 0)
    state = await repository_of(service).get_state(*key)
    assert state is not None and state.version == 2
