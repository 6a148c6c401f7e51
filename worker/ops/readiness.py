"""What `/ready` checks: the broker answers, PostgreSQL answers, and the consumer owns
partitions and is either caught up or committing (not stuck behind a growing lag).

`ConsumerProgress` is fed by the batch handler after each commit; it also keeps the
per-partition lag gauge current (on each commit, and on each `/ready` or `/metrics` call).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from faststream.kafka import KafkaBroker

from worker.ops import metrics

CHECK_TIMEOUT_S = 3.0

Partition = tuple[str, int]


@dataclass(kw_only=True)
class ConsumerProgress:
    stall_s: float
    clock: Callable[[], float] = time.monotonic
    started_at: float = field(default_factory=time.monotonic)
    last_commit_at: float | None = None
    behind_since: float | None = None  # when a lag was first seen after being caught up
    _partitions: set[Partition] = field(default_factory=set)

    async def committed(self, consumer: Any) -> None:
        """Called by the batch handler after it committed a batch's offsets."""
        self.last_commit_at = self.clock()
        with contextlib.suppress(Exception):  # a rebalance meanwhile: the next call catches up
            await self.lag(consumer)

    async def lag(self, consumer: Any) -> dict[Partition, int]:
        """High watermark minus position for each assigned partition whose end is known yet."""
        lag: dict[Partition, int] = {}
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue  # not fetched from yet: unknown, not zero
            position = await consumer.position(tp)
            lag[(tp.topic, tp.partition)] = max(highwater - position, 0)
        metrics.set_lag(lag, previous=self._partitions)
        self._partitions = set(lag)
        if not any(lag.values()):
            self.behind_since = None
        elif self.behind_since is None:
            self.behind_since = self.clock()
        return lag

    def progressing(self) -> bool:
        """A commit within the stall window, counted from when the lag appeared (or the start)."""
        moments = (self.started_at, self.last_commit_at, self.behind_since)
        return self.clock() - max(m for m in moments if m is not None) < self.stall_s


class Pingable(Protocol):
    async def ping(self) -> None: ...


@dataclass(kw_only=True)
class Readiness:
    broker: KafkaBroker
    progress: ConsumerProgress
    database: Callable[[], Pingable | None]  # None until the app's lifespan opened it

    def consumer(self) -> Any:
        """The subscriber's aiokafka consumer, once the broker has started it."""
        for subscriber in self.broker.subscribers:
            if (consumer := getattr(subscriber, "consumer", None)) is not None:
                return consumer
        return None

    async def check(self) -> dict[str, Any]:
        broker, database, consumer = await asyncio.gather(
            self._broker(), self._database(), self._consumer()
        )
        ready = broker == "ok" and database == "ok" and consumer["status"] in ("idle", "consuming")
        return {"ready": ready, "broker": broker, "database": database, "consumer": consumer}

    async def _broker(self) -> str:
        return "ok" if await self.broker.ping(timeout=CHECK_TIMEOUT_S) else "unreachable"

    async def _database(self) -> str:
        database = self.database()
        if database is None:
            return "not started"
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await database.ping()
        except Exception as error:
            return f"unreachable ({type(error).__name__})"
        return "ok"

    async def _consumer(self) -> dict[str, Any]:
        consumer = self.consumer()
        if consumer is None:
            return {"status": "not started"}
        if not consumer.assignment():
            # Joining the group, or more processes than partitions: this one has no work.
            return {"status": "no partitions assigned"}
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                lag = await self.progress.lag(consumer)
        except Exception as error:  # timeout, rebalance in progress, broker trouble
            return {"status": f"lag unknown ({type(error).__name__})"}
        behind = sum(lag.values())
        if behind == 0:
            status = "idle"
        else:
            status = "consuming" if self.progress.progressing() else "stalled"
        return {"status": status, "partitions": len(consumer.assignment()), "lag": behind}
