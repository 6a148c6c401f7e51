"""`run` serves the worker on uvloop (worker/tools/event_loop.py)."""

from __future__ import annotations

import asyncio

from worker.tools.event_loop import run_on_event_loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_the_worker_runs_on_uvloop_where_it_is_installed() -> None:
    assert run_on_event_loop(_loop_module()).startswith("uvloop")
