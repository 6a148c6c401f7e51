"""Row-level security: in one tenant's context no query reaches another tenant's rows,
even one written without a `WHERE tenant_id`."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from schemas import ConversationState
from tests.state_store import save_state
from worker.qualify.repository import ConversationStateRepository
from worker.store.database import Database


def state(tenant_id: uuid.UUID, name: str) -> ConversationState:
    return ConversationState(
        tenant_id=tenant_id,
        account_id="acme",
        contact_id="jane",
        contact_email="jane@example.com",
        contact_name=name,
    )


async def test_unscoped_queries_see_and_change_only_the_declared_tenant(
    repository: ConversationStateRepository, database: Database
) -> None:
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    await save_state(database, state(tenant_a, "A"))
    await save_state(database, state(tenant_b, "B"))

    async with database.reading(tenant_a) as tx:
        conn = tx.conn
        seen = await conn.fetch("SELECT tenant_id, contact_name FROM tenant.conversation_states")
        changed = await conn.execute("UPDATE tenant.conversation_states SET contact_name = 'x'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):  # the worker role cannot delete
            await conn.execute("DELETE FROM tenant.conversation_states")

    assert [(r["tenant_id"], r["contact_name"]) for r in seen] == [(tenant_a, "A")]
    assert changed == "UPDATE 1"
    untouched = await repository.get_state(tenant_b, "acme", "jane")
    assert untouched is not None and untouched.contact_name == "B"


async def test_writing_a_row_for_another_tenant_is_refused(database: Database) -> None:
    async with database.reading(uuid.uuid4()) as tx:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await tx.conn.execute(
                "INSERT INTO tenant.conversation_states (tenant_id, account_id, contact_id,"
                " contact_email) VALUES ($1, 'acme', 'jane', 'x@example.com')",
                uuid.uuid4(),
            )


async def test_without_a_declared_tenant_nothing_is_visible(
    database: Database, pool: asyncpg.Pool
) -> None:
    await save_state(database, state(uuid.uuid4(), "A"))
    assert await pool.fetchval("SELECT count(*) FROM tenant.conversation_states") == 0
    assert await pool.fetchval("SELECT count(*) FROM tenant.conversation_turns") == 0


async def test_same_account_and_contact_in_two_tenants_are_two_conversations(
    database: Database, owner_pool: asyncpg.Pool
) -> None:
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    await save_state(database, state(tenant_a, "A"))
    await save_state(database, state(tenant_b, "B"))
    rows = await owner_pool.fetch(
        "SELECT tenant_id, contact_name FROM tenant.conversation_states ORDER BY contact_name"
    )
    assert [(r["tenant_id"], r["contact_name"]) for r in rows] == [(tenant_a, "A"), (tenant_b, "B")]


async def test_the_worker_role_may_delete_only_from_the_debounce_queue(
    owner_pool: asyncpg.Pool,
) -> None:
    """README ("Tenant isolation", "Database roles"): the worker deletes the deferred turns it
    extracted and their due rows (migration 0007), nothing else; `forget` runs as the owner."""
    deletable = await owner_pool.fetch(
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND c.relkind IN ('r', 'p')
          AND has_table_privilege('qualification_worker', c.oid, 'DELETE')
        ORDER BY 1
        """
    )

    assert [row["relname"] for row in deletable] == ["deferred_turns", "extraction_due"]
