"""QualificationService against a real PostgreSQL, with the offline rules extractor."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from schemas import ConversationKey, ConversationTurn
from tests.harness import turn
from tests.state_store import RULES
from worker.bootstrap import build_service
from worker.qualify.outcomes import BatchOutcome, EventRef
from worker.qualify.repository import ConversationStateRepository
from worker.qualify.service import QualificationService


def service_for(repository: ConversationStateRepository) -> QualificationService:
    return build_service(RULES, repository.database)


def conflicts(outcome: BatchOutcome) -> set[EventRef]:
    return {t for t, d in outcome.dead_letters().items() if d.reason == "conflict"}


def rejected(outcome: BatchOutcome) -> dict[ConversationKey, str]:
    return {c.key: str(c.rejected) for c in outcome.conversations if c.rejected is not None}


def turns_of(*payloads: dict[str, Any]) -> list[ConversationTurn]:
    return [ConversationTurn.model_validate(p) for p in payloads]


async def test_individual_contributor_persona_is_stored(
    repository: ConversationStateRepository,
) -> None:
    """Regression: the contract's varchar(20) cannot hold 'individual_contributor' (22)."""
    tenant = uuid.uuid4()
    batch = turns_of(turn(tenant, "acme", "ic", 0, "hello", persona_type="individual_contributor"))
    outcome = await service_for(repository).process_batch(batch)
    state = await repository.get_state(tenant, "acme", "ic")
    assert outcome.applied == 1 and rejected(outcome) == {}
    assert state is not None and state.persona_type == "individual_contributor"


async def test_data_the_database_refuses_is_reported_not_retried(
    repository: ConversationStateRepository, owner_pool: asyncpg.Pool
) -> None:
    await owner_pool.execute(
        "ALTER TABLE tenant.conversation_turns"
        " ADD CONSTRAINT test_refuses CHECK (text <> 'refused')"
    )
    tenant = uuid.uuid4()
    batch = turns_of(
        turn(tenant, "acme", "refused", 0, "refused"), turn(tenant, "acme", "fine", 0, "fine")
    )
    outcome = await service_for(repository).process_batch(batch)
    refused = ConversationKey(tenant, "acme", "refused")
    assert list(rejected(outcome)) == [refused]
    assert "CheckViolationError" in rejected(outcome)[refused]
    assert outcome.applied == 1
    assert await repository.get_state(*refused) is None


async def test_overlapping_concurrent_batches_count_each_turn_once(
    repository: ConversationStateRepository, owner_pool: asyncpg.Pool
) -> None:
    tenant = uuid.uuid4()
    sent = turns_of(
        *(turn(tenant, "acme", "jane", i, f"We need this by Q{i % 4 + 1}.") for i in range(30))
    )
    service = service_for(repository)
    await asyncio.gather(
        service.process_batch(sent[:20]),
        service.process_batch(sent[10:]),
        service.process_batch(sent[5:25]),
        service.process_batch(sent),
    )
    state = await repository.get_state(tenant, "acme", "jane")
    assert state is not None and state.interaction_count == 30
    versions = [
        r["version"]
        for r in await owner_pool.fetch(
            "SELECT (payload->>'version')::int AS version FROM tenant.outbox ORDER BY 1"
        )
    ]
    assert versions == list(range(1, state.version + 1))
    stored = await owner_pool.fetchval("SELECT count(*) FROM tenant.conversation_turns")
    assert stored == 30


async def test_redelivered_batch_is_skipped_before_extraction(
    repository: ConversationStateRepository,
) -> None:
    tenant = uuid.uuid4()
    batch = turns_of(*(turn(tenant, "acme", "jane", i, "Budget is $40k.") for i in range(5)))
    service = service_for(repository)
    first = await service.process_batch(batch)
    again = await service.process_batch(batch)
    assert (first.applied, first.duplicates) == (5, 0)
    assert (again.applied, again.duplicates) == (0, 5)
    assert [c.extraction_status for c in again.conversations] == [None]


async def test_reused_event_id_with_other_content_is_a_conflict_first_wins(
    repository: ConversationStateRepository,
) -> None:
    tenant = uuid.uuid4()
    original = turn(tenant, "acme", "jane", 0, "the original text")
    reused = {**original, "text": "different text, same event_id"}
    service = service_for(repository)

    in_one_batch = await service.process_batch(turns_of(original, reused))
    redelivered = await service.process_batch(turns_of(original))
    later = await service.process_batch(turns_of(reused))

    loser = ConversationTurn.model_validate(reused)
    assert in_one_batch.applied == 1
    assert conflicts(in_one_batch) == {(loser.event_id, loser.fingerprint())}
    assert conflicts(redelivered) == set() and redelivered.duplicates == 1
    assert conflicts(later) == {(loser.event_id, loser.fingerprint())} and later.applied == 0
    state = await repository.get_state(tenant, "acme", "jane")
    assert state is not None and state.interaction_count == 1


async def test_event_id_taken_by_another_tenant_is_a_conflict_not_a_silent_drop(
    repository: ConversationStateRepository,
) -> None:
    first = turn(uuid.uuid4(), "acme", "jane", 0, "tenant one's turn")
    other_tenant = {**first, "tenant_id": str(uuid.uuid4()), "text": "tenant two's turn"}
    service = service_for(repository)
    await service.process_batch(turns_of(first))
    outcome = await service.process_batch(turns_of(other_tenant))
    loser = ConversationTurn.model_validate(other_tenant)
    assert conflicts(outcome) == {(loser.event_id, loser.fingerprint())}
    assert outcome.applied == 0
    assert await repository.get_state(loser.tenant_id, "acme", "jane") is None
