"""ConversationStateRepository against a real PostgreSQL: round trips, locking, tenant scope."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

from schemas import (
    BANTSignals,
    Channel,
    ConversationState,
    DealStage,
    MEDDICSignals,
    NextAction,
    PersonaType,
    QualificationExtraction,
    QualificationState,
)
from schemas.bounds import EVIDENCE
from tests.state_store import save_state
from worker.errors import PermanentError
from worker.qualify.repository import ConversationStateRepository
from worker.store.database import Database


def new_state(tenant_id: uuid.UUID | None = None, contact_id: str = "c-1") -> ConversationState:
    return ConversationState(
        tenant_id=tenant_id or uuid.uuid4(),
        account_id="acme-logistics",
        contact_id=contact_id,
        contact_email="jane@example.com",
    )


def rich_state() -> ConversationState:
    """Every column set, nested JSON included, odd characters included."""
    when = datetime(2026, 10, 5, 14, 3, 7, 123456, tzinfo=timezone(timedelta(hours=2)))
    return ConversationState(
        tenant_id=uuid.uuid4(),
        account_id="acme-logistics",
        contact_id="c-josé",
        contact_email="jose@example.com",
        contact_name="José Álvarez 🚚",
        deal_stage=DealStage.EVALUATION,
        persona_type=PersonaType.VP,
        qualification=QualificationState(
            bant=BANTSignals(
                budget_identified=True,
                budget_confidence=0.8,
                budget_range="$100k-$150k",
                budget_evidence=["we set aside around $120k", 'quotes "inside" \\ too'],
            ),
            meddic=MEDDICSignals(decision_criteria=["SOC 2", "Salesforce integration"]),
            overall_confidence=0.61,
            key_insights=["Dispatch team loses 3 h/day"],
            recommended_next_questions=["Who signs off?"],
            last_updated=when,
        ),
        interaction_count=7,
        last_interaction=when,
        last_channel=Channel.MEETING,
        escalated=True,
        escalation_reason="asked for a human",
        confidence_score=0.61,
        next_actions=[NextAction(description="Send SOC 2 report", priority="high", due_at=when)],
        follow_up_scheduled=when + timedelta(days=2),
        metadata={"crm": {"id": 42, "tags": ["a", "b"], "nested": {"deep": [1, 2.5, None]}}},
        updated_at=when,
        version=3,
    )


async def test_stored_state_round_trips_exactly(repository: ConversationStateRepository) -> None:
    original = rich_state()
    saved = await save_state(repository.database, original)
    loaded = await repository.get_state(saved.tenant_id, saved.account_id, saved.contact_id)
    assert saved.id is not None and saved.created_at is not None
    assert loaded == saved
    # Everything but what the database assigns comes back as it was given.
    assert saved.model_dump(exclude={"id", "created_at"}) == original.model_dump(
        exclude={"id", "created_at"}
    )


async def test_missing_state_is_none(repository: ConversationStateRepository) -> None:
    assert await repository.get_state(uuid.uuid4(), "nope", "nope") is None


async def test_update_of_missing_state_is_a_clear_error(
    repository: ConversationStateRepository,
) -> None:
    with pytest.raises(PermanentError, match="no conversation state"):
        await repository.update_qualification(
            uuid.uuid4(), "nope", "nope", QualificationExtraction()
        )


def quote_extraction(index: int) -> QualificationExtraction:
    return QualificationExtraction(
        bant=BANTSignals(
            need_identified=True, need_confidence=0.5, need_evidence=[f"distinct quote {index}"]
        )
    )


async def test_concurrent_updates_of_one_conversation_lose_nothing(
    repository: ConversationStateRepository,
) -> None:
    state = await save_state(repository.database, new_state())
    key = (state.tenant_id, state.account_id, state.contact_id)
    updates = EVIDENCE.items  # as many quotes as a dimension keeps (schemas/bounds.py)
    await asyncio.gather(
        *(repository.update_qualification(*key, quote_extraction(i)) for i in range(updates))
    )
    final = await repository.get_state(*key)
    assert final is not None
    assert sorted(final.qualification.bant.need_evidence) == sorted(
        f"distinct quote {i}" for i in range(updates)
    )
    assert final.version == updates


async def test_concurrent_updates_touch_only_their_own_rows(
    repository: ConversationStateRepository, owner_pool: asyncpg.Pool
) -> None:
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    targets = [
        await save_state(repository.database, new_state(tenant_a, f"c-{i}")) for i in range(25)
    ]
    targets += [
        await save_state(repository.database, new_state(tenant_b, f"c-{i}")) for i in range(25)
    ]
    # Same account and contact ids, third tenant: must come out untouched.
    bystanders = [
        await save_state(repository.database, new_state(contact_id=f"c-{i}")) for i in range(5)
    ]
    before = {
        r["id"]: dict(r)
        for r in await owner_pool.fetch(
            "SELECT * FROM tenant.conversation_states WHERE id = ANY($1::uuid[])",
            [s.id for s in bystanders],
        )
    }

    await asyncio.gather(
        *(
            repository.update_qualification(
                s.tenant_id, s.account_id, s.contact_id, quote_extraction(i)
            )
            for i, s in enumerate(targets)
        )
    )

    for i, target in enumerate(targets):
        after = await repository.get_state(target.tenant_id, target.account_id, target.contact_id)
        assert after is not None and after.version == 1
        assert after.qualification.bant.need_evidence == [f"distinct quote {i}"]
    after_rows = {
        r["id"]: dict(r)
        for r in await owner_pool.fetch(
            "SELECT * FROM tenant.conversation_states WHERE id = ANY($1::uuid[])", list(before)
        )
    }
    assert after_rows == before


async def test_list_by_tenant_filters_by_stage_and_tenant(
    repository: ConversationStateRepository,
) -> None:
    tenant = uuid.uuid4()
    await save_state(repository.database, new_state(tenant, "c-1"))
    await save_state(
        repository.database,
        new_state(tenant, "c-2").model_copy(update={"deal_stage": DealStage.DISCOVERY}),
    )
    await save_state(repository.database, new_state(contact_id="c-3"))  # another tenant

    everything = await repository.list_states_by_tenant(tenant)
    discovery = await repository.list_states_by_tenant(tenant, DealStage.DISCOVERY)
    assert [s.contact_id for s in everything] == ["c-1", "c-2"]
    assert [s.contact_id for s in discovery] == ["c-2"]


async def test_update_qualification_makes_one_version_and_one_event(
    repository: ConversationStateRepository, owner_pool: asyncpg.Pool
) -> None:
    state = await save_state(repository.database, new_state())
    key = (state.tenant_id, state.account_id, state.contact_id)

    updated = await repository.update_qualification(*key, quote_extraction(1))

    assert updated.version == state.version + 1
    rows = await owner_pool.fetch(
        "SELECT event_id, payload FROM tenant.outbox WHERE tenant_id = $1", state.tenant_id
    )
    assert len(rows) == 1
    event = rows[0]["payload"]
    assert event["version"] == updated.version and event["source"] == "reextract"
    assert event["qualification"]["bant"]["need_evidence"] == ["distinct quote 1"]
    assert event["changed_fields"] == ["bant.need"]


async def test_save_state_upserts_on_the_conversation_key(database: Database) -> None:
    first = await save_state(database, new_state())
    second = await save_state(
        database, first.model_copy(update={"contact_name": "Jane", "updated_at": datetime.now(UTC)})
    )
    assert second.id == first.id and second.contact_name == "Jane"
