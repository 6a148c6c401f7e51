"""The one commit path: a state version, its stage record and its event, in one transaction
under the state's row lock. No version exists without its event, whatever made it.

Every writer of a version (the turn, override and re-extraction paths, the repository API, the
inactivity sweeper) calls `commit_under_lock`: lock → version → commit → log."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import structlog

from schemas import ConversationKey, ConversationState, StageMove
from worker.errors import ConversationErased, ConversationNotFound
from worker.ops import metrics
from worker.qualify.update_event import update_event
from worker.qualify.versioning import NextVersion
from worker.store.database import Database
from worker.store.erasure import conversation_hash
from worker.store.unit_of_work import TenantTransaction

log = structlog.get_logger(__name__)


# How a writer locks the state row: by default the stored row, None when there is none.
LockState = Callable[[TenantTransaction, ConversationKey], Awaitable[ConversationState | None]]
# The version to commit from the locked state (None: there is none), or None to write nothing.
Decide = Callable[[TenantTransaction, ConversationState | None], Awaitable[NextVersion | None]]


async def lock_state(tx: TenantTransaction, key: ConversationKey) -> ConversationState | None:
    return await tx.states.lock_state(key)


async def commit_under_lock(
    database: Database,
    key: ConversationKey,
    decide: Decide,
    *,
    update_topic: str,
    lock: LockState = lock_state,
    erasures: int | None = None,
    extract_s: float = 0.0,
) -> ConversationState | None:
    """In one transaction of `key`'s tenant: the state locked, the version `decide` makes of
    it committed with its stage records and its event; then logged. Returns the stored state,
    or None when `decide` wrote nothing. With `erasures` (counted before an extraction's read),
    a `forget` since that read raises ConversationErased before anything is locked."""
    started = time.perf_counter()
    async with database.for_tenant(key.tenant_id) as tx:
        if erasures is not None:
            await refuse_if_erased(tx, key, erasures)
        version = await decide(tx, await lock(tx, key))
        if version is None:
            return None
        stored = await commit_version(tx, version, update_topic=update_topic)
    log_version(
        version,
        turns_applied=len(version.turn_event_ids),
        extract_s=extract_s,
        write_s=time.perf_counter() - started,
    )
    return stored


async def commit_version(
    tx: TenantTransaction, version: NextVersion, *, update_topic: str
) -> ConversationState:
    """Writes `version` inside `tx` (which holds the state's row lock); the caller's
    transaction commits all three writes or none."""
    stored = await tx.states.upsert_state(version.state)
    for move, step in stage_records(version):
        await tx.transitions.insert_stage_transition(
            version.key,
            version=version.state.version,
            change=move,
            source=version.source,
            actor=version.actor,
            step=step,
        )
    await tx.outbox.insert_outbox(update_topic, update_event(version))
    return stored


async def refuse_if_erased(tx: TenantTransaction, key: ConversationKey, erasures: int) -> None:
    """Before the row lock: a `forget` since the extraction's read (another erasure count)
    means what it read is erased and must not be written back, in a new row or not."""
    if await tx.erasures.lock_for_writing(key) != erasures:
        raise ConversationErased(
            f"conversation {conversation_hash(key)} erased during its extraction"
        )


async def locked_state(tx: TenantTransaction, key: ConversationKey) -> ConversationState:
    """The stored state, locked; raises ConversationNotFound when there is none."""
    state = await tx.states.lock_state(key)
    if state is None:
        raise ConversationNotFound(f"no conversation state for {conversation_hash(key)}")
    return state


def stage_records(version: NextVersion) -> list[tuple[StageMove, int | None]]:
    """The version's rows of tenant.stage_transitions, each with its position in the AI's stage
    walk (None for a stage set otherwise), in the order they happened: a resume first (the
    proposal after it was judged from the resumed stage), then each judged step of the walk,
    or the one stage a person or the worker set."""
    records: list[tuple[StageMove, int | None]] = []
    if version.resumed is not None:
        records.append((version.resumed, None))
    if (change := version.stage_change) is not None:
        if change.steps:
            records += [(move, number) for number, move in enumerate(change.steps, start=1)]
        else:
            records.append((change, None))
    return records


def log_version(
    version: NextVersion, *, turns_applied: int, extract_s: float, write_s: float
) -> None:
    """After the commit: one log line and the version metrics."""
    status = version.extraction.status if version.extraction is not None else "none"
    metrics.observe_version(version.stage_change, status)
    for dimension, suggestion in version.state.suggestions.items():
        if suggestion.version == version.state.version:  # recorded by this version
            metrics.SUGGESTIONS_RECORDED.labels(dimension=dimension).inc()
    change = version.stage_change
    log.info(
        "state_version_committed",
        tenant_id=str(version.key.tenant_id),
        conversation_hash=conversation_hash(version.key),
        version=version.state.version,
        source=version.source,
        turns_applied=turns_applied,
        extraction=status,
        stage=version.state.deal_stage.value,
        resumed=version.resumed is not None,
        stage_change=f"{change.from_stage.value}->{change.to_stage.value}"
        f" {'accepted' if change.accepted else 'rejected'}"
        if change
        else None,
        extract_ms=round(extract_s * 1000, 1),
        write_ms=round(write_s * 1000, 1),
    )
