"""The scheduler of deferred extraction (EXTRACT_DEBOUNCE_MS > 0; DESIGN.md data
flow step 7).

With a debounce, a batch stores its turns in tenant.deferred_turns and schedules their
conversation in tenant.extraction_due (due once quiet for the debounce, or once its oldest
deferred turn waited EXTRACT_MAX_WAIT_MS) and commits its offsets without an LLM call. This
lifespan task, on every worker, claims due conversations with `FOR UPDATE SKIP LOCKED` and a
lease (one claimant per conversation, however many workers), and extracts each through
`QualificationService.extract_deferred`: one call per prompt that fits for all its deferred
turns, one version, one event. The lease is renewed while the extraction runs; a crashed
worker's lease runs out and another worker takes the conversation over (nothing was deleted
before its version committed). On stop it claims nothing more, lets the extractions in flight
finish for a while, and releases the claims of those it has to cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol
from uuid import UUID

import structlog

from schemas import ConversationKey
from worker.ops import metrics
from worker.ops.clock import Clock, utc_now
from worker.ops.periodic import run_periodically
from worker.qualify.outcomes import ConversationOutcome
from worker.store.database import Database
from worker.store.deferred_extraction import Debounce
from worker.store.erasure import conversation_hash

log = structlog.get_logger(__name__)

# Long enough for one extraction round trip between renewals; how long a crashed worker's
# conversations wait before another worker takes them over.
LEASE = timedelta(seconds=30)
RENEW_EVERY_S = 10.0
DRAIN_S = 10.0  # on stop: how long extractions in flight may take before they are cancelled
# With EXTRACT_DEBOUNCE_MS=0 the scheduler still runs: the turns deferred while a debounce was
# set are all due at once.
LEFTOVERS = Debounce(quiet=timedelta(0), max_wait=timedelta(0))


class ExtractDeferred(Protocol):
    def __call__(self, key: ConversationKey, *, claim: UUID) -> Awaitable[ConversationOutcome]: ...


@dataclass(kw_only=True)
class ExtractionScheduler:
    database: Database
    extract: ExtractDeferred
    debounce: Debounce
    concurrency: int  # conversations in flight (the service bounds LLM calls itself)
    poll_interval_s: float
    clock: Clock = utc_now
    lease: timedelta = LEASE
    renew_every_s: float = RENEW_EVERY_S
    drain_s: float = DRAIN_S
    _claims: dict[asyncio.Task[ConversationOutcome], tuple[ConversationKey, UUID]] = field(
        default_factory=dict, init=False
    )
    _renewed: float = field(default=0.0, init=False)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await run_periodically(
                self._round,
                stop,
                interval_s=self.poll_interval_s,
                failure_event="extraction_schedule_failed",
            )
        finally:
            await self.drain()

    async def _round(self) -> None:
        await self.claim_round()
        await self._renew_when_due()

    async def claim_round(self) -> list[asyncio.Task[ConversationOutcome]]:
        """Claims as many due conversations as there are free slots and starts their
        extractions; returns their tasks."""
        free = self.concurrency - len(self._claims)
        if free <= 0:
            return []
        claim = uuid.uuid4()
        keys = await self.database.claim_due_extractions(
            now=self.clock(),
            debounce=self.debounce,
            lease=self.lease,
            claim=claim,
            limit=free,
        )
        return [self._start(key, claim) for key in keys]

    async def run_once(self) -> list[ConversationOutcome]:
        """One round, awaited to its end (tests drive the schedule with an injected clock)."""
        return list(await asyncio.gather(*await self.claim_round()))

    async def drain(self) -> None:
        """Extractions in flight finish, or are cancelled after `drain_s` and release their
        claims, so another worker takes those conversations over at once."""
        if not self._claims:
            return
        tasks = list(self._claims)
        log.info("extraction_scheduler_draining", in_flight=len(tasks))
        _done, late = await asyncio.wait(tasks, timeout=self.drain_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, key: ConversationKey, claim: UUID) -> asyncio.Task[ConversationOutcome]:
        task = asyncio.create_task(self._extract(key, claim), name=f"extract-{key}")
        self._claims[task] = (key, claim)
        task.add_done_callback(self._claims.pop)
        return task

    async def _extract(self, key: ConversationKey, claim: UUID) -> ConversationOutcome:
        try:
            outcome = await self.extract(key, claim=claim)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._release(key, claim))
            raise
        except Exception as error:  # its lease runs out and the conversation is claimed again
            metrics.DEFERRED_EXTRACTIONS.labels(outcome="failed").inc()
            log.warning(
                "deferred_extraction_failed",
                conversation_hash=conversation_hash(key),
                error=type(error).__name__,
            )
            return ConversationOutcome(key=key)
        metrics.DEFERRED_EXTRACTIONS.labels(
            outcome="rejected" if outcome.rejected is not None else "done"
        ).inc()
        # The batch that deferred these turns counted none as applied: counted once, here.
        metrics.TURNS_APPLIED.inc(outcome.applied)
        return outcome

    async def _release(self, key: ConversationKey, claim: UUID) -> None:
        async with self.database.for_tenant(key.tenant_id) as tx:
            await tx.deferred.release(key, claim=claim, extracted=[])

    async def _renew_when_due(self) -> None:
        if not self._claims or time.monotonic() - self._renewed < self.renew_every_s:
            return
        claims = sorted({claim for _key, claim in self._claims.values()})
        await self.database.renew_extraction_claims(claims, lease=self.lease)
        self._renewed = time.monotonic()
