"""`python -m worker reextract TENANT [ACCOUNT CONTACT] [--all]`.

Runs the extraction again on stored turns and writes each result as a new state version
through the normal path (`QualificationService.reextract`: the row lock, the merge, the stage
check, the outbox), so downstream services see an ordinary `qualification.updated` event.
Without `--all`: the conversations whose extraction failed (turns still pending). With `--all`:
every selected conversation, from its latest stored turns (after a prompt or model change).
A running worker's outbox relay publishes the events; nothing is published while none runs.
Turns whose text retention cleared (`TURN_TEXT_RETENTION_DAYS`) cannot be read again: `--all`
skips them and says how many it skipped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

import structlog

from schemas import ConversationKey
from worker.bootstrap import bootstrap
from worker.errors import ConfigurationError
from worker.qualify.outcomes import ConversationOutcome
from worker.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class Reextraction:
    outcomes: list[ConversationOutcome]
    cleared_turns: int = 0  # stored turns skipped: retention cleared their text


async def reextract(
    settings: Settings,
    tenant_id: UUID,
    account_id: str | None = None,
    contact_id: str | None = None,
    *,
    stored_turns: bool = False,
) -> Reextraction:
    if (account_id is None) != (contact_id is None):
        raise ConfigurationError("give both ACCOUNT and CONTACT, or neither")
    size = max(2, settings.llm_concurrency + 1)
    async with bootstrap(settings, pool_size=size) as components:
        db, service = components.database, components.service()
        async with db.reading(tenant_id) as tx:
            keys = await tx.turns.reextract_candidates(
                account_id, contact_id, pending_only=not stored_turns
            )
        slots = asyncio.Semaphore(settings.llm_concurrency)

        async def one(key: ConversationKey) -> ConversationOutcome:
            async with slots:
                return await service.reextract(key, stored_turns=stored_turns)

        outcomes = list(await asyncio.gather(*(one(key) for key in keys)))
        cleared = 0  # pending turns are never cleared
        if stored_turns:
            async with db.reading(tenant_id) as tx:
                cleared = await tx.turns.cleared_turn_count(account_id, contact_id)
        return Reextraction(outcomes=outcomes, cleared_turns=cleared)


def report(reextraction: Reextraction) -> tuple[str, int]:
    """The lines to print, and the exit code: 1 when an extraction failed again."""
    outcomes = reextraction.outcomes
    lines = []
    for outcome in outcomes:
        conversation = f"{outcome.key.account_id} {outcome.key.contact_id}"
        if outcome.version is not None:
            lines.append(f"{conversation}: version {outcome.version}")
        elif outcome.extraction_status == "failed":
            lines.append(f"{conversation}: extraction failed again, nothing written")
        else:
            lines.append(f"{conversation}: no turns to extract")
    written = sum(o.version is not None for o in outcomes)
    failed = sum(o.extraction_status == "failed" for o in outcomes)
    lines.append(f"{len(outcomes)} conversation(s): {written} new version(s), {failed} failed")
    if reextraction.cleared_turns:
        lines.append(f"{reextraction.cleared_turns} turns skipped: text cleared by retention")
    return "\n".join(lines), 1 if failed else 0
