"""The qualification service: what the consumer, the scheduler, the sweepers and the operator
commands call. It holds the settings of a unit of work and hands each call to the module whose
job it is: batch.py (the fan-out), turn_path.py, override_path.py, deferred_extraction.py and
reextraction.py. worker/bootstrap.py builds it from `Settings`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from schemas import ConversationKey, ConversationTurn, QualificationOverride
from worker.extract.port import Extractor
from worker.ops.clock import Clock, utc_now
from worker.qualify.batch import BatchFanOut
from worker.qualify.criteria import DEFAULT_CRITERIA, StageCriteria
from worker.qualify.deferred_extraction import DeferredExtraction, DeferredTurnSettings
from worker.qualify.extraction import Extraction
from worker.qualify.outcomes import BatchOutcome, ConversationOutcome, Event
from worker.qualify.override_path import OverridePath
from worker.qualify.reextraction import Reextraction
from worker.qualify.turn_path import TurnPath
from worker.store.database import Database
from worker.store.deferred_extraction import Debounce


@dataclass(kw_only=True)
class QualificationService:
    database: Database
    extractor: Extractor
    update_topic: str
    concurrency: int
    criteria: StageCriteria = DEFAULT_CRITERIA
    # With a debounce, a batch only stores its turns as deferred; the scheduler
    # (worker/qualify/deferred_extraction_scheduler.py) extracts each conversation once it is due.
    debounce: Debounce | None = None
    deferred: DeferredTurnSettings = field(default_factory=DeferredTurnSettings)
    clock: Clock = utc_now
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)

    async def process_batch(self, events: Sequence[Event]) -> BatchOutcome:
        """The consumer's unit of work (batch.py)."""
        fan_out = BatchFanOut(
            slots=self._slots,
            turns=self._turn_path(),
            deferred=self._deferred_extraction(),
            overrides=self._override_path(),
            debounced=self.debounce is not None,
        )
        return await fan_out.process(events)

    async def process_conversation(
        self, key: ConversationKey, turns: list[ConversationTurn]
    ) -> ConversationOutcome:
        """New turns of one conversation extracted at once, whatever the debounce
        (turn_path.py)."""
        return await self._turn_path().process(key, turns)

    async def extract_deferred(self, key: ConversationKey, *, claim: UUID) -> ConversationOutcome:
        """The scheduler's unit of work for a due conversation it claimed
        (deferred_extraction.py)."""
        return await self._deferred_extraction().extract(key, claim=claim)

    async def apply_override(
        self, key: ConversationKey, override: QualificationOverride
    ) -> ConversationOutcome:
        return await self._override_path().apply(key, override)

    async def reextract(self, key: ConversationKey, *, stored_turns: bool) -> ConversationOutcome:
        """`python -m worker reextract` and the pending sweeper's unit of work
        (reextraction.py)."""
        return await self._reextraction().reextract(key, stored_turns=stored_turns)

    # Built per call from the fields, so a clock or extractor set on the service counts at once.

    def _extraction(self) -> Extraction:
        return Extraction(extractor=self.extractor, criteria=self.criteria)

    def _turn_path(self) -> TurnPath:
        return TurnPath(
            database=self.database,
            extraction=self._extraction(),
            criteria=self.criteria,
            update_topic=self.update_topic,
            clock=self.clock,
        )

    def _override_path(self) -> OverridePath:
        return OverridePath(
            database=self.database,
            criteria=self.criteria,
            update_topic=self.update_topic,
            clock=self.clock,
        )

    def _deferred_extraction(self) -> DeferredExtraction:
        return DeferredExtraction(
            database=self.database,
            settings=self.deferred,
            clock=self.clock,
            slots=self._slots,
            process=self._turn_path().process,
        )

    def _reextraction(self) -> Reextraction:
        return Reextraction(
            database=self.database,
            extraction=self._extraction(),
            criteria=self.criteria,
            update_topic=self.update_topic,
            clock=self.clock,
        )
