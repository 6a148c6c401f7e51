"""The loop of every background task (the pending and inactivity sweepers, text retention, the
outbox relay, the deferred extraction scheduler): a round at once, then one per interval until
the worker stops. A failed round (the database or the broker down) is logged and the next round
tries again; it never ends the task."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


async def run_periodically(
    one_round: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    *,
    interval_s: float,
    failure_event: str,
    wake: asyncio.Event | None = None,
) -> None:
    """`one_round` now, then every `interval_s` (or as soon as `wake` is set) until `stop`.
    A round that raises is logged as `failure_event`."""
    while not stop.is_set():
        try:
            await one_round()
        except Exception as error:
            log.warning(failure_event, error=type(error).__name__, detail=str(error)[:200])
        await _until_next_round(stop, interval_s, wake)


async def _until_next_round(
    stop: asyncio.Event, interval_s: float, wake: asyncio.Event | None
) -> None:
    events = [stop] if wake is None else [stop, wake]
    waiting = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval_s):
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiting:
            task.cancel()
    if wake is not None:
        wake.clear()
