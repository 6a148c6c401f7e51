"""ConversationStateRepository: the seed's API over conversation states, for callers outside
the consumer (operator commands, embedding applications).

Reads are plain; `update_qualification` is a state change like any other: it merges under the
row lock and goes through the one commit path, so it makes version + 1 and exactly one
`qualification.updated` event.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from schemas import ConversationKey, ConversationState, DealStage, QualificationSignals
from worker.errors import ConversationNotFound
from worker.ops.clock import Clock, utc_now
from worker.qualify.commit import commit_under_lock
from worker.qualify.versioning import NextVersion, version_from_signals
from worker.store.database import Database
from worker.store.unit_of_work import TenantTransaction


@dataclass(frozen=True, kw_only=True)
class ConversationStateRepository:
    database: Database
    update_topic: str
    clock: Clock = utc_now

    async def get_state(
        self, tenant_id: UUID, account_id: str, contact_id: str
    ) -> ConversationState | None:
        async with self.database.reading(tenant_id) as tx:
            return await tx.states.read_state(ConversationKey(tenant_id, account_id, contact_id))

    async def list_states_by_tenant(
        self, tenant_id: UUID, deal_stage: DealStage | None = None
    ) -> list[ConversationState]:
        async with self.database.reading(tenant_id) as tx:
            return await tx.states.list_states_by_tenant(deal_stage)

    async def update_qualification(
        self,
        tenant_id: UUID,
        account_id: str,
        contact_id: str,
        new_signals: QualificationSignals,
    ) -> ConversationState:
        """Merge `new_signals` into the stored state under its row lock: version + 1, one
        event. Raises ConversationNotFound when the conversation has no state."""
        key = ConversationKey(tenant_id, account_id, contact_id)
        now = self.clock()

        async def decide(_tx: TenantTransaction, state: ConversationState | None) -> NextVersion:
            if state is None:
                raise ConversationNotFound(f"no conversation state for {key}")
            return version_from_signals(state, new_signals, now=now)

        stored = await commit_under_lock(self.database, key, decide, update_topic=self.update_topic)
        assert stored is not None  # decide always makes a version
        return stored
