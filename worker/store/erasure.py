"""Erasing one conversation from the database (`python -m worker forget`; migration 0005).

The worker's role cannot delete (migration 0002, on purpose), so the erasure connects as the
login role of DATABASE_URL, the tables' owner (whom row-level security does not filter), not
as `DB_ROLE`. One transaction deletes the conversation's state, turns, stage transitions,
overrides and outbox rows and records the erasure in `tenant.erasures` by the sha256 of the
conversation key, with who asked and how many rows went: no personal data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog

from schemas import ConversationKey
from worker.errors import ConfigurationError
from worker.store.postgres import connect, queries

log = structlog.get_logger(__name__)


def conversation_hash(key: ConversationKey) -> str:
    """What `tenant.erasures` knows of a conversation: the sha256 of its key, in hex."""
    return hashlib.sha256(str(key).encode()).hexdigest()


@dataclass(frozen=True)
class ErasureGuard:
    """On a tenant's unit of work: what an extraction checks so that it never writes back a
    conversation erased after it read it. The key's erasures are counted with the read (the
    extraction's short read counts them in its own statement, `read_snapshot`) and again under
    the writers' lock before writing; a `forget` in between changes the count."""

    conn: asyncpg.Connection

    async def erasures(self, key: ConversationKey) -> int:
        count: int = await self.conn.fetchval(queries()["count_erasures"], conversation_hash(key))
        return count

    async def lock_for_writing(self, key: ConversationKey) -> int:
        """Waits for a `forget` of the conversation in progress (and keeps one from starting
        until the transaction ends), then counts its erasures."""
        await self.conn.execute(queries()["lock_conversation_for_writing"], str(key))
        return await self.erasures(key)


@dataclass(frozen=True, kw_only=True)
class Erasure:
    """`rows_deleted` is empty when there was nothing to delete; `erased_at` is then the
    earlier erasure of the same conversation, or None when it never existed."""

    key: ConversationKey
    rows_deleted: dict[str, int]
    erased_at: datetime | None

    @property
    def found(self) -> bool:
        return bool(self.rows_deleted)

    @property
    def already_erased(self) -> bool:
        return not self.found and self.erased_at is not None


async def erase_conversation(database_url: str, key: ConversationKey, *, erased_by: str) -> Erasure:
    conn = await connect(database_url)  # the login role: the owner, not DB_ROLE
    try:
        async with conn.transaction():
            return await _erase(conn, key, erased_by)
    except asyncpg.InsufficientPrivilegeError as error:
        raise ConfigurationError(
            f"the DATABASE_URL role may not erase ({error}): run forget as the tables' owner"
        ) from None
    finally:
        await conn.close()


async def _erase(conn: asyncpg.Connection, key: ConversationKey, erased_by: str) -> Erasure:
    digest = conversation_hash(key)
    await conn.execute(queries()["lock_conversation_outbox"], str(key))
    await conn.execute(queries()["lock_conversation_writers"], str(key))
    await conn.fetchrow(queries()["lock_erased_state"], *key)
    counts = await conn.fetchrow(queries()["erase_conversation"], *key, str(key))
    deleted = {table: count for table, count in dict(counts).items() if count}
    if not deleted:
        earlier = await conn.fetchval(queries()["last_erasure"], key.tenant_id, digest)
        return Erasure(key=key, rows_deleted={}, erased_at=earlier)
    erased_at = await conn.fetchval(
        queries()["insert_erasure"], key.tenant_id, digest, erased_by, deleted
    )
    log.info(
        "conversation_erased",
        tenant_id=str(key.tenant_id),
        conversation_hash=digest,
        rows_deleted=deleted,
    )
    return Erasure(key=key, rows_deleted=deleted, erased_at=erased_at)
