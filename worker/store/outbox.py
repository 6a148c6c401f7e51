"""The transactional outbox: rows written with each state version, and the relay that
publishes them to `qualification.updated` (at least once, in version order per conversation).
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
from worker.store.database import connect, queries

NOTIFY_CHANNEL = "tenant_outbox"

log = structlog.get_logger(__name__)

# (topic, key, value, headers); publish_many returns once the broker has acknowledged them all.
Message = tuple[str, bytes, bytes, list[tuple[str, bytes]]]
PublishMany = Callable[[Sequence[Message]], Awaitable[None]]


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
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop))
        try:
            while not stop.is_set():
                await self._drain_safely()
                await self._wait_for_work(stop)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def publish_pending(self) -> int:
        """One claim → publish → mark cycle; returns how many rows it published."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(queries()["claim_outbox"], self.batch_size)
            if not rows:
                return 0
            started = time.perf_counter()
            await self.publish_many([_message(row) for row in rows])
            await conn.execute(queries()["mark_outbox_published"], [row["id"] for row in rows])
        waited = time.perf_counter() - started
        metrics.observe_published(row["age_s"] + waited for row in rows)
        return len(rows)

    async def _drain_safely(self) -> None:
        try:
            while await self.publish_pending() == self.batch_size:
                pass
            metrics.OUTBOX_BACKLOG.set(await self.pool.fetchval(queries()["outbox_backlog"]))
        except Exception as error:  # database or broker down: the rows wait for the next round
            log.warning("outbox_relay_failed", error=type(error).__name__, detail=str(error)[:200])

    async def _wait_for_work(self, stop: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll_interval_s):
                stopping = asyncio.ensure_future(stop.wait())
                woken = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({stopping, woken}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopping.cancel()
                    woken.cancel()
        self._wake.clear()

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
