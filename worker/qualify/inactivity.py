"""Inactivity stalls (CONTRACT.md section 4): open deals gone quiet move to `stalled`.

A lifespan task that, every `interval_s`, lists the open deals (prospecting … negotiation)
whose latest turn (`last_interaction`) is more than `stall_after_days` before the clock's now,
across tenants (migration 0006's listing function), and stalls each through the one commit path:
lock the state, check again under the lock (still open, still quiet: a turn may have arrived
since the listing), then commit a `version_from_inactivity` (`source: inactivity`, one stage
record, one event).

Safe with several workers and after a crash: one worker sweeps at a time (an advisory lock, as
for the other sweepers), and even without it each stall is its own short transaction re-checked
under the row lock, so a deal is stalled once. A crash mid-sweep rolls back at most the deal it
was on; the stalled ones are no longer open, so the next round lists only the rest.

The next turn of a deal stalled this way resumes it (`QualificationService`, `versioning.
version_from_turns(stalled_by_inactivity=True)`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from schemas import ConversationKey, ConversationState
from worker.ops.clock import Clock, utc_now
from worker.ops.periodic import run_periodically
from worker.qualify.commit import commit_under_lock
from worker.qualify.criteria import DEFAULT_CRITERIA, StageCriteria
from worker.qualify.stages import is_inactive
from worker.qualify.versioning import NextVersion, version_from_inactivity
from worker.store.database import Database
from worker.store.unit_of_work import TenantTransaction

log = structlog.get_logger(__name__)

INACTIVITY_LOCK = "inactivity-sweeper"


@dataclass(kw_only=True)
class InactivitySweeper:
    database: Database
    update_topic: str
    stall_after_days: int
    interval_s: float
    criteria: StageCriteria = DEFAULT_CRITERIA
    batch_size: int = 200
    clock: Clock = utc_now

    async def run(self, stop: asyncio.Event) -> None:
        """Sweeps at start (a worker restarted more often than the interval still sweeps),
        then every `interval_s` until `stop`."""
        await run_periodically(
            self.sweep, stop, interval_s=self.interval_s, failure_event="inactivity_sweep_failed"
        )

    async def sweep(self) -> int:
        """One round; returns how many deals it stalled (0 when another worker sweeps)."""
        async with self.database.exclusive(INACTIVITY_LOCK) as acquired:
            if not acquired:
                return 0
            return await self._stall_quiet_deals()

    async def _stall_quiet_deals(self) -> int:
        now = self.clock()
        stalled = 0
        while True:
            keys = await self.quiet_open_deals(now)
            stalled_now = 0
            for key in keys:
                stalled_now += await self.stall_if_quiet(key, now=now)
            stalled += stalled_now
            # A short page is the last; a page of which nothing stalled (every deal moved on
            # since the listing) would be listed again: stop, the next round sees.
            if len(keys) < self.batch_size or stalled_now == 0:
                break
        if stalled:
            log.info("inactive_deals_stalled", deals=stalled, days=self.stall_after_days)
        return stalled

    async def quiet_open_deals(self, now: datetime) -> list[ConversationKey]:
        """At most `batch_size` open deals quiet for `stall_after_days` at `now`, quietest
        first, across tenants."""
        return await self.database.quiet_open_conversations(
            quiet_before=now - timedelta(days=self.stall_after_days), limit=self.batch_size
        )

    async def stall_if_quiet(self, key: ConversationKey, *, now: datetime) -> bool:
        """Stalls `key` if, under its row lock, it is still open and still quiet; True if it
        did. The listing is only a hint: this check is what decides."""

        async def decide(
            _tx: TenantTransaction, state: ConversationState | None
        ) -> NextVersion | None:
            if state is None or not is_inactive(state, now=now, days=self.stall_after_days):
                return None  # erased, closed, stalled already, or a turn arrived meanwhile
            return version_from_inactivity(
                state, now=now, days=self.stall_after_days, criteria=self.criteria
            )

        stalled = await commit_under_lock(
            self.database, key, decide, update_topic=self.update_topic
        )
        return stalled is not None
