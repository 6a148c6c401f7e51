"""A batch's fan-out: its events grouped by conversation, the conversations run concurrently
(bounded), each as its steps in conversation order: a run of turns, or an override."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from schemas import ConversationKey, QualificationOverride
from worker.errors import PermanentError
from worker.ops import tracing
from worker.qualify.deferred_extraction import DeferredExtraction
from worker.qualify.outcomes import (
    BatchOutcome,
    ConversationOutcome,
    Event,
    group_by_conversation,
    steps,
)
from worker.qualify.override_path import OverridePath
from worker.qualify.turn_path import TurnPath
from worker.store.erasure import conversation_hash

log = structlog.get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class BatchFanOut:
    slots: asyncio.Semaphore  # the service's bound on conversations extracted at once
    turns: TurnPath
    deferred: DeferredExtraction
    overrides: OverridePath
    # With a debounce, a run of turns is only deferred (unless an override follows it).
    debounced: bool

    async def process(self, events: Sequence[Event]) -> BatchOutcome:
        """Every conversation is attempted. A permanent failure (data the database refuses)
        is that conversation's outcome; any other failure is raised, so the consumer commits
        nothing and the batch comes again (what did commit is then skipped by event_id)."""
        groups, conflicts = group_by_conversation(events)
        results = await asyncio.gather(
            *(self._bounded(key, group) for key, group in groups.items()), return_exceptions=True
        )
        if failures := [r for r in results if isinstance(r, BaseException)]:
            log.warning("conversations_failed", failed=len(failures), conversations=len(groups))
            raise failures[0]
        outcomes = [r for r in results if isinstance(r, ConversationOutcome)]
        return BatchOutcome(conversations=outcomes, batch_conflicts=conflicts)

    async def _bounded(self, key: ConversationKey, events: list[Event]) -> ConversationOutcome:
        async with self.slots:
            try:
                with tracing.span(
                    "conversation", conversation_hash=conversation_hash(key), events=len(events)
                ):
                    return await self._conversation_steps(key, events)
            except PermanentError as error:
                # Retrying cannot help and would stall the partition: the consumer
                # dead-letters these events instead.
                log.error(
                    "conversation_rejected",
                    conversation_hash=conversation_hash(key),
                    error=str(error)[:200],
                )
                return ConversationOutcome(key=key, rejected=error, events=tuple(events))

    async def _conversation_steps(
        self, key: ConversationKey, events: list[Event]
    ) -> ConversationOutcome:
        """In conversation order: each run of turns is one extraction and one version, each
        override one version (overrides interleave with turns only when people correct a
        conversation while it goes on)."""
        outcome = ConversationOutcome(key=key)
        planned = steps(events)
        for index, step in enumerate(planned):
            if isinstance(step, QualificationOverride):
                if index == 0:  # else the turns or the override before it flushed them
                    outcome += await self.deferred.flush_before_override(key, [])
                outcome += await self.overrides.apply(key, step)
            elif any(isinstance(later, QualificationOverride) for later in planned[index:]):
                # An override applies to what was said before it, deferred turns included
                # (whatever EXTRACT_DEBOUNCE_MS says now): extract that first.
                outcome += await self.deferred.flush_before_override(key, step)
            elif not self.debounced:
                outcome += await self.turns.process(key, step)
            else:
                outcome += await self.deferred.defer(key, step)
        return outcome
