"""The unit of work: a pooled connection bound to one tenant, its transaction, and the
repositories that run on it (cosmicpython's unit_of_work). `Database.for_tenant` (database.py)
hands it out:

    async with database.for_tenant(tenant_id) as tx:
        state = await tx.states.lock_or_insert_state(key, email)
        ...  # commits when the block ends, rolls back if it raises
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from worker.store.deferred_extraction import DeferredTurns
from worker.store.erasure import ErasureGuard
from worker.store.outbox import OutboxRepository
from worker.store.repositories import (
    OverrideRepository,
    StageTransitionRepository,
    StateRepository,
    TurnRepository,
)


@dataclass(frozen=True)
class TenantTransaction:
    """One tenant's connection (and transaction, when opened by `for_tenant`)."""

    conn: asyncpg.Connection = field(repr=False)
    tenant_id: UUID
    states: StateRepository = field(init=False)
    turns: TurnRepository = field(init=False)
    transitions: StageTransitionRepository = field(init=False)
    outbox: OutboxRepository = field(init=False)
    overrides: OverrideRepository = field(init=False)
    deferred: DeferredTurns = field(init=False)
    erasures: ErasureGuard = field(init=False)

    def __post_init__(self) -> None:
        # Frozen: the repositories are fixed at construction, all on this one connection.
        object.__setattr__(self, "states", StateRepository(self.conn, self.tenant_id))
        object.__setattr__(self, "turns", TurnRepository(self.conn, self.tenant_id))
        object.__setattr__(self, "transitions", StageTransitionRepository(self.conn))
        object.__setattr__(self, "outbox", OutboxRepository(self.conn))
        object.__setattr__(self, "overrides", OverrideRepository(self.conn, self.tenant_id))
        object.__setattr__(self, "deferred", DeferredTurns(self.conn, self.tenant_id))
        object.__setattr__(self, "erasures", ErasureGuard(self.conn))
