"""The transactional outbox: rows written with each state version, and the relay that
publishes them to `qualification.updated` (at least once, in version order per conversation).

A row the broker refuses does not hold up the others: the rest of the claim is published and
marked, and the refused row is set aside for a growing delay (migration 0008), logged and
counted; its conversation's later versions may then reach the topic before it. Only when
nothing of a claim got through (the broker is down) is the claim rolled back and tried again
whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
import orjson
import structlog

from schemas import DeadLetter, QualificationUpdated, conversation_key
from worker.ops import metrics
from worker.ops.periodic import run_periodically
from worker.store.postgres import connect, queries

NOTIFY_CHANNEL = "tenant_outbox"

log = structlog.get_logger(__name__)

# (topic, key, value, headers).
Message = tuple[str, bytes, bytes, list[tuple[str, bytes]]]


@dataclass(frozen=True)
class NotPublished:
    """Why the broker did not take one message."""

    error: str  # the error's name: logged and kept on the row, never the payload
    # True for a refusal no retry changes (too large for the broker); False for what a broker
    # outage looks like (timeouts, lost connections).
    about_the_message: bool


# Returns, once the broker answered for every message, None (acknowledged) or why not, in
# the order of the messages.
PublishMany = Callable[[Sequence[Message]], Awaitable[Sequence[NotPublished | None]]]


class BrokerUnavailable(Exception):
    """Nothing of a claim got through and nothing says the messages were at fault."""


@dataclass(frozen=True)
class OutboxRepository:
    """Bound to the state's transaction: an event is published if and only if its version
    commits."""

    conn: asyncpg.Connection

    async def insert_outbox(self, topic: str, event: QualificationUpdated) -> None:
        key = conversation_key(event.tenant_id, event.account_id, event.contact_id)
        payload = event.model_dump(mode="json", by_alias=True)
        # Also NOTIFYs the relays (delivered at commit, not before).
        await self.conn.execute(
            queries()["insert_outbox"], event.event_id, event.tenant_id, topic, key, payload
        )

    async def insert_dead_letter(
        self, topic: str, event_id: UUID, tenant_id: UUID, key: str, letter: DeadLetter
    ) -> None:
        """A dead letter the worker decides after the record's offset was committed (a deferred
        turn): published by the relay, keyed by the conversation, in the transaction that
        deletes the turn, so it is neither lost nor erased later than the conversation."""
        payload = letter.model_dump(mode="json")
        await self.conn.execute(
            queries()["insert_outbox"], event_id, tenant_id, topic, key, payload
        )


@dataclass(kw_only=True)
class OutboxRelay:
    """Claims unpublished rows, publishes them, marks them published; wakes on NOTIFY or a poll."""

    pool: asyncpg.Pool
    database_url: str
    publish_many: PublishMany
    poll_interval_s: float = 1.0
    batch_size: int = 500
    # A refused row is tried again after this delay, doubled with each refusal up to the max.
    retry_delay_s: float = 2.0
    max_retry_delay_s: float = 600.0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop))
        try:
            await run_periodically(
                self._drain,
                stop,
                interval_s=self.poll_interval_s,
                failure_event="outbox_relay_failed",
                wake=self._wake,  # a NOTIFY from a commit that wrote an event
            )
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def publish_pending(self) -> int:
        """One claim → publish → mark cycle; returns how many rows it claimed (published or
        set aside), so a drain goes on while claims come back full."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(queries()["claim_outbox"], self.batch_size)
            if not rows:
                return 0
            started = time.perf_counter()
            outcomes = await self.publish_many([_message(row) for row in rows])
            published = [row for row, why in zip(rows, outcomes, strict=True) if why is None]
            refused = [(row, why) for row, why in zip(rows, outcomes, strict=True) if why]
            if refused and not published and not any(why.about_the_message for _, why in refused):
                raise BrokerUnavailable(refused[0][1].error)  # rolls the claim back
            await conn.execute(queries()["mark_outbox_published"], [row["id"] for row in published])
            await self._set_aside(conn, refused)
        waited = time.perf_counter() - started
        metrics.observe_published(row["age_s"] + waited for row in published)
        return len(rows)

    async def _set_aside(
        self, conn: asyncpg.Connection, refused: Sequence[tuple[asyncpg.Record, NotPublished]]
    ) -> None:
        """Rows the broker refused (for their size, or while it took the others): tried again
        after a delay, so they are never claimed ahead of the rows behind them in a loop."""
        if not refused:
            return
        await conn.execute(
            queries()["defer_outbox_rows"],
            [row["id"] for row, _ in refused],
            [why.error for _, why in refused],
            self.retry_delay_s,
            self.max_retry_delay_s,
        )
        for row, why in refused:
            log.error(
                "outbox_row_not_published",
                outbox_id=row["id"],
                event_id=str(row["event_id"]),
                topic=row["topic"],
                bytes=len(_message(row)[2]),
                attempts=row["attempts"] + 1,
                error=why.error,
            )
        metrics.observe_not_published(why.error for _, why in refused)

    async def _drain(self) -> None:
        """Claims until a claim comes back short. Database or broker down: the round fails and
        the rows wait for the next."""
        while await self.publish_pending() == self.batch_size:
            pass
        metrics.OUTBOX_BACKLOG.set(await self.pool.fetchval(queries()["outbox_backlog"]))

    async def _listen(self, stop: asyncio.Event) -> None:
        """LISTEN on a dedicated connection; reconnects after a database restart."""
        while not stop.is_set():
            try:
                conn = await connect(self.database_url)
                try:
                    await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
                    await self._until_closed_or_stopped(conn, stop)
                finally:
                    await conn.close()
            except Exception as error:
                log.info("outbox_listen_reconnecting", error=type(error).__name__)
                await asyncio.sleep(self.poll_interval_s)

    async def _until_closed_or_stopped(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        closed = asyncio.Event()
        conn.add_termination_listener(lambda *_: closed.set())
        if conn.is_closed():
            return
        stopping = asyncio.ensure_future(stop.wait())
        dropped = asyncio.ensure_future(closed.wait())
        try:
            await asyncio.wait({stopping, dropped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            dropped.cancel()


def _message(row: asyncpg.Record) -> Message:
    headers = [("event_id", str(row["event_id"]).encode())]
    return row["topic"], row["key"].encode(), orjson.dumps(row["payload"]), headers
