"""The override path: a person's correction (CONTRACT.md section 3) as one version under the
state's row lock, once by event_id (overrides.py decides what it changes)."""

from __future__ import annotations

from dataclasses import dataclass

from schemas import ConversationKey, ConversationState, QualificationOverride
from worker.ops import metrics
from worker.ops.clock import Clock
from worker.qualify.commit import commit_under_lock
from worker.qualify.criteria import StageCriteria
from worker.qualify.outcomes import ConversationOutcome
from worker.qualify.overrides import apply_override
from worker.qualify.versioning import NextVersion
from worker.store.database import Database
from worker.store.unit_of_work import TenantTransaction


@dataclass(frozen=True, kw_only=True)
class OverridePath:
    database: Database
    criteria: StageCriteria
    update_topic: str
    clock: Clock

    async def apply(
        self, key: ConversationKey, override: QualificationOverride
    ) -> ConversationOutcome:
        """A person's correction, once by event_id, as one version under the row lock."""
        now = self.clock()
        not_applied: list[ConversationOutcome] = []

        async def decide(
            tx: TenantTransaction, state: ConversationState | None
        ) -> NextVersion | None:
            if state is None:
                not_applied.append(ConversationOutcome(key=key, unknown=(override,)))
                return None
            version = apply_override(state, override, now=now).as_next_version(state, self.criteria)
            if not await tx.overrides.insert_override(key, override, version=version.state.version):
                not_applied.append(await _seen_before(tx, key, override))
                return None
            return version

        stored = await commit_under_lock(self.database, key, decide, update_topic=self.update_topic)
        if stored is None:
            return not_applied[0]
        metrics.OVERRIDES_APPLIED.labels(actor_type=override.actor.type).inc()
        return ConversationOutcome(key=key, version=stored.version, overrides_applied=1)


async def _seen_before(
    tx: TenantTransaction, key: ConversationKey, override: QualificationOverride
) -> ConversationOutcome:
    """Its event_id is taken: a redelivery (a duplicate) or another override (a conflict)."""
    stored = await tx.overrides.find_stored_overrides([override.event_id])
    if stored.get(override.event_id) == override.fingerprint():
        return ConversationOutcome(key=key, redelivered=(override,))
    return ConversationOutcome(key=key, conflicts=(override,))
