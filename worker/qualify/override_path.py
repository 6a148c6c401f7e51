"""The override path: a person's correction (CONTRACT.md section 3) as one version under the
state's row lock, once by event_id (overrides.py decides what it changes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from schemas import ConversationKey, QualificationOverride
from worker.ops import metrics
from worker.qualify.commit import commit_version, log_version
from worker.qualify.criteria import StageCriteria
from worker.qualify.outcomes import ConversationOutcome
from worker.qualify.overrides import apply_override
from worker.store.unit_of_work import Database


@dataclass(frozen=True, kw_only=True)
class OverridePath:
    database: Database
    criteria: StageCriteria
    update_topic: str
    clock: Callable[[], datetime]

    async def apply(
        self, key: ConversationKey, override: QualificationOverride
    ) -> ConversationOutcome:
        """A person's correction, once by event_id, as one version under the row lock."""
        now = self.clock()
        async with self.database.for_tenant(key.tenant_id) as tx:
            state = await tx.states.lock_state(key)
            if state is None:
                return ConversationOutcome(key=key, unknown=(override,))
            version = apply_override(state, override, now=now).as_next_version(state, self.criteria)
            if not await tx.overrides.insert_override(key, override, version=version.state.version):
                stored = await tx.overrides.find_stored_overrides(
                    key.tenant_id, [override.event_id]
                )
                if stored.get(override.event_id) == override.fingerprint():
                    return ConversationOutcome(key=key, duplicates=1)
                return ConversationOutcome(key=key, conflicts=(override,))
            await commit_version(tx, version, update_topic=self.update_topic)
        metrics.OVERRIDES_APPLIED.labels(actor_type=override.actor.type).inc()
        log_version(version, turns_applied=0, extract_s=0.0, write_s=0.0)
        return ConversationOutcome(key=key, version=version.state.version, overrides_applied=1)
