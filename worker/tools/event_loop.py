"""The event loop `run` serves the worker on (one process, or each of `--workers N`)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_on_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """`main` on uvloop where it is installed (not on Windows), as `faststream run` does, else
    on asyncio's own loop. libuv's loop costs less CPU per socket read and write (every
    PostgreSQL round trip, Kafka fetch and LLM call is some): 5 % less worker CPU per
    extraction and 7 % more W1 throughput in the bench (docs/performance.md)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
