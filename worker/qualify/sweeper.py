"""The pending sweeper: extracts turns an LLM outage left pending in conversations gone quiet.

A failed extraction fails open: the turns are stored with `extracted_at` null and ride along
with the conversation's next extraction. A conversation that gets no further turn would keep
them unextracted for good, so this lifespan task looks every `interval_s` for conversations
whose pending turns are at least `quiet_s` old and re-extracts them through
`QualificationService.reextract` (the row lock, the merge, the stage check, the outbox: a new
version like any other). One worker sweeps at a time (an advisory lock); a round stops at the
first failed extraction, since the LLM is evidently still down (or its circuit still open).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

import structlog

from schemas import ConversationKey
from worker.ops.periodic import run_periodically
from worker.qualify.outcomes import ConversationOutcome
from worker.store.database import Database

log = structlog.get_logger(__name__)

SWEEP_LOCK = "pending-sweeper"


class Reextract(Protocol):
    def __call__(
        self, key: ConversationKey, *, stored_turns: bool
    ) -> Awaitable[ConversationOutcome]: ...


@dataclass(kw_only=True)
class PendingSweeper:
    database: Database
    reextract: Reextract
    interval_s: float = 30.0
    quiet_s: float = 60.0
    batch_size: int = 50

    async def run(self, stop: asyncio.Event) -> None:
        await run_periodically(
            self.sweep, stop, interval_s=self.interval_s, failure_event="pending_sweep_failed"
        )

    async def sweep(self) -> int:
        """One round; returns how many conversations got a new version."""
        async with self.database.exclusive(SWEEP_LOCK) as acquired:
            if not acquired:
                return 0  # another worker is sweeping
            return await self._sweep_locked()

    async def _sweep_locked(self) -> int:
        keys = await self.database.quiet_pending_conversations(
            quiet_s=self.quiet_s, limit=self.batch_size
        )
        written = 0
        for key in keys:
            outcome = await self.reextract(key, stored_turns=False)
            if outcome.extraction_status == "failed":
                break
            written += outcome.version is not None
        if keys:
            log.info("pending_turns_swept", candidates=len(keys), versions=written)
        return written
