"""The database: the pool, the tenant-bound units of work it hands out (unit_of_work.py),
cross-worker advisory locks, and the few queries that read across tenants (what the sweepers and
the scheduler look for).

Driver errors become the project's own at the store's boundary: each transaction and query
here runs inside `translated_errors` (postgres.py). Data the database refuses becomes
`RejectedByDatabase` (permanent: dead-letter it), a lost connection `DatabaseUnavailable`
(transient: redeliver). Nothing above the store imports asyncpg.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from schemas import ConversationKey
from worker.errors import ConfigurationError
from worker.store.deferred_extraction import Debounce
from worker.store.postgres import create_pool, load_migrations, queries, translated_errors
from worker.store.unit_of_work import TenantTransaction


@dataclass(frozen=True)
class Database:
    """The pool, handing out tenant-bound units of work and cross-worker locks."""

    pool: asyncpg.Pool = field(repr=False)

    @contextlib.asynccontextmanager
    async def for_tenant(self, tenant_id: UUID) -> AsyncIterator[TenantTransaction]:
        """A transaction in `tenant_id`'s context: row-level security shows it that tenant's
        rows only, whatever a query's WHERE clause says. Commits when the block ends."""
        with translated_errors():
            async with self.pool.acquire() as conn:
                await conn.execute(queries()["set_tenant"], str(tenant_id))
                async with conn.transaction():
                    yield TenantTransaction(conn, tenant_id)

    @contextlib.asynccontextmanager
    async def reading(self, tenant_id: UUID) -> AsyncIterator[TenantTransaction]:
        """The same, without a transaction: each statement stands alone. For short reads
        (the snapshot before an extraction) that lock nothing and write nothing."""
        with translated_errors():
            async with self.pool.acquire() as conn:
                await conn.execute(queries()["set_tenant"], str(tenant_id))
                yield TenantTransaction(conn, tenant_id)

    @contextlib.asynccontextmanager
    async def exclusive(self, lock: str) -> AsyncIterator[bool]:
        """A session advisory lock held for the block, across every worker of the database:
        yields False at once when another worker holds it. The lock dies with the session, so
        a crashed worker never keeps it."""
        with translated_errors():
            async with self.pool.acquire() as conn:
                acquired = bool(await conn.fetchval(queries()["try_advisory_lock"], lock))
                try:
                    yield acquired
                finally:
                    if acquired:
                        await conn.fetchval(queries()["advisory_unlock"], lock)

    async def quiet_pending_conversations(
        self, *, quiet_s: float, limit: int
    ) -> list[ConversationKey]:
        """Conversations (any tenant) with pending turns and no newer pending turn for
        `quiet_s`, oldest first: what the pending sweeper re-extracts."""
        with translated_errors():
            rows = await self.pool.fetch(queries()["quiet_pending_conversations"], quiet_s, limit)
        return [ConversationKey(r["tenant_id"], r["account_id"], r["contact_id"]) for r in rows]

    async def quiet_open_conversations(
        self, *, quiet_before: datetime, limit: int
    ) -> list[ConversationKey]:
        """Open deals (any tenant) whose latest turn is older than `quiet_before`, quietest
        first: what the inactivity sweeper stalls."""
        with translated_errors():
            rows = await self.pool.fetch(queries()["quiet_open_conversations"], quiet_before, limit)
        return [ConversationKey(r["tenant_id"], r["account_id"], r["contact_id"]) for r in rows]

    async def claim_due_extractions(
        self,
        *,
        now: datetime,
        debounce: Debounce,
        lease: timedelta,
        claim: UUID,
        limit: int,
    ) -> list[ConversationKey]:
        """Up to `limit` conversations of any tenant due at `now` by `debounce`, oldest first,
        claimed as `claim` for `lease` from the database's now() (leases never depend on the
        workers' clocks)."""
        with translated_errors():
            rows = await self.pool.fetch(
                queries()["claim_due_extractions"],
                now,
                debounce.quiet,
                debounce.max_wait,
                lease,
                claim,
                limit,
            )
        return [ConversationKey(r["tenant_id"], r["account_id"], r["contact_id"]) for r in rows]

    async def renew_extraction_claims(self, claims: Sequence[UUID], *, lease: timedelta) -> int:
        """Extends the claims to the database's now() plus `lease`."""
        if not claims:
            return 0
        with translated_errors():
            renewed: int = await self.pool.fetchval(
                queries()["renew_extraction_claims"], list(claims), lease
            )
        return renewed

    async def ping(self) -> None:
        with translated_errors():
            await self.pool.fetchval("SELECT 1")

    async def require_migrated(self) -> None:
        """Refuse to start on a database `migrate` has not brought up to date."""
        expected = {m.version for m in load_migrations()}
        try:
            rows = await self.pool.fetch("SELECT version FROM tenant.schema_migrations")
        except asyncpg.UndefinedTableError:
            rows = []
        if missing := sorted(expected - {r["version"] for r in rows}):
            raise ConfigurationError(
                f"the database lacks migrations {', '.join(missing)}: "
                "run `python -m worker migrate`"
            )


@contextlib.asynccontextmanager
async def open_database(
    database_url: str, *, max_size: int, role: str | None
) -> AsyncIterator[Database]:
    """A pool for the block's lifetime (a command, or the worker's lifespan)."""
    pool = await create_pool(database_url, max_size=max_size, role=role)
    try:
        yield Database(pool)
    finally:
        await pool.close()
