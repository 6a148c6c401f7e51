"""Turn text retention (`TURN_TEXT_RETENTION_DAYS`; migration 0005).

A lifespan task that, every `interval_s`, clears the text (and metadata) of turns extracted
more than `retention_days` ago and marks them with `text_cleared_at`. The row stays: its
`event_id` and fingerprint keep a redelivered turn a duplicate (no count, no version). Turns
whose extraction is pending are never cleared: they still have to be read. One worker sweeps
at a time (an advisory lock); the clearing runs in rounds of `batch_size` rows, each its own
short transaction, until nothing is due.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from worker.ops.clock import Clock, utc_now
from worker.ops.periodic import run_periodically
from worker.store.postgres import queries, translated_errors

if TYPE_CHECKING:
    from worker.store.database import Database

log = structlog.get_logger(__name__)


RETENTION_LOCK = "turn-text-retention"


@dataclass(kw_only=True)
class TurnTextRetention:
    database: Database
    retention_days: int
    interval_s: float
    batch_size: int = 1000
    clock: Clock = utc_now

    async def run(self, stop: asyncio.Event) -> None:
        await run_periodically(
            self.sweep, stop, interval_s=self.interval_s, failure_event="turn_text_retention_failed"
        )

    async def sweep(self) -> int:
        """One round; returns how many turns' text it cleared (0 when another worker sweeps)."""
        async with self.database.exclusive(RETENTION_LOCK) as acquired:
            if not acquired:
                return 0
            return await self._clear_due()

    async def _clear_due(self) -> int:
        now = self.clock()
        cutoff = now - timedelta(days=self.retention_days)
        total = 0
        while True:
            with translated_errors():
                cleared: int = await self.database.pool.fetchval(
                    queries()["clear_turn_text"], cutoff, now, self.batch_size
                )
            total += cleared
            if cleared < self.batch_size:
                break
        if total:
            log.info("turn_text_cleared", turns=total, extracted_before=cutoff.isoformat())
        return total
