"""Re-extraction: a stored conversation extracted again and written as new versions, through the
same commit path as new turns (`python -m worker reextract`, the pending sweeper)."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from schemas import ConversationKey, ConversationState
from worker.errors import ConversationErased
from worker.extract.port import ExtractionResult, TurnText
from worker.ops import tracing
from worker.ops.clock import Clock
from worker.qualify.commit import commit_under_lock, locked_state
from worker.qualify.criteria import StageCriteria
from worker.qualify.extraction import Extraction
from worker.qualify.outcomes import ConversationOutcome
from worker.qualify.turn_path import MAX_PENDING_TURNS
from worker.qualify.versioning import NextVersion, version_from_reextraction
from worker.store.database import Database
from worker.store.erasure import conversation_hash
from worker.store.unit_of_work import TenantTransaction

log = structlog.get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class Reextraction:
    database: Database
    extraction: Extraction
    criteria: StageCriteria
    update_topic: str
    clock: Clock

    async def reextract(self, key: ConversationKey, *, stored_turns: bool) -> ConversationOutcome:
        """Reads its pending turns (whose extraction failed), or with `stored_turns` its latest
        stored turns (after a prompt or model change), in prompts that fit the model (one
        version each). A failed extraction writes nothing and ends the round.
        """
        async with self.database.reading(key.tenant_id) as tx:
            erasures = await tx.erasures.erasures(key)  # before the read it guards
            state = await tx.states.read_state(key)
            read = tx.turns.recent_turns if stored_turns else tx.turns.pending_turns
            turns = await read(key, limit=MAX_PENDING_TURNS)
        if state is None or not turns:
            return ConversationOutcome(key=key)
        outcome, known = ConversationOutcome(key=key), self.extraction.known(state)
        for chunk in self.extraction.plan(turns, known, shrink=1):
            result = await self.extraction.extract(chunk, known)
            if result.status != "ok":
                return outcome + ConversationOutcome(key=key, extraction_status=result.status)
            with tracing.span("write_transaction", turns=0):
                try:
                    state = await self._write_reextraction(key, chunk, result, erasures=erasures)
                    known = self.extraction.known(state)
                except ConversationErased:
                    log.info(
                        "extraction_discarded_after_erasure",
                        conversation_hash=conversation_hash(key),
                    )
                    return outcome
            outcome += ConversationOutcome(
                key=key, version=state.version, extraction_status=result.status
            )
        return outcome

    async def _write_reextraction(
        self,
        key: ConversationKey,
        turns: list[TurnText],
        result: ExtractionResult,
        *,
        erasures: int,
    ) -> ConversationState:
        now = self.clock()

        async def decide(tx: TenantTransaction, state: ConversationState | None) -> NextVersion:
            assert state is not None  # locked_state raised otherwise
            await tx.turns.mark_turns_extracted([t.event_id for t in turns], now)
            # Merged against the locked state, not the one the extraction was shown.
            return version_from_reextraction(
                state, result, extracted_turns=len(turns), now=now, criteria=self.criteria
            )

        stored = await commit_under_lock(
            self.database,
            key,
            decide,
            update_topic=self.update_topic,
            lock=locked_state,
            erasures=erasures,
            extract_s=result.seconds,
        )
        assert stored is not None  # decide always makes a version
        return stored
