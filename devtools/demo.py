"""`python -m worker demo`: the main job end to end on the embedded stack.

Brings the stack up, publishes examples/conversations.jsonl, runs the worker (the offline
rules extractor unless LLM_MODEL is set), waits until every turn is applied, prints each
tenant's pipeline, and shuts down what it started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

from devtools.stack import StackInfo, stack_down, stack_status, stack_up_async
from worker.bootstrap import bootstrap
from worker.errors import ConfigurationError, WorkerError
from worker.qualify.repository import ConversationStateRepository
from worker.settings import RULES_MODEL, Settings
from worker.store.postgres import migrate_database
from worker.tools.producer import publish_turns, read_turns
from worker.tools.views import render_pipeline

STACK_ROOT = Path(".stack")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "conversations.jsonl"
APPLY_DEADLINE_S = 300.0


async def run_demo(settings: Settings, *, examples: Path = EXAMPLES) -> int:
    was_running = (status := stack_status(STACK_ROOT)) is not None and status.all_running
    info = await stack_up_async(STACK_ROOT, topics=settings.topics, migrate=migrate_database)
    print(f"stack: PostgreSQL on {info.database_url}, broker on {info.kafka_bootstrap_servers}")
    env = demo_env(info)
    worker = start_worker(env)
    try:
        await _publish_and_wait(settings, info, env, examples, worker)
    finally:
        _stop(worker)
        if not was_running:
            stack_down(STACK_ROOT)
            print("stack stopped")
    return 0


def demo_env(info: StackInfo) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": info.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": info.kafka_bootstrap_servers,
    }
    env.setdefault("LLM_MODEL", RULES_MODEL)
    # The demo needs no HTTP endpoints; a busy port 8080 must not stop it (HTTP_PORT=N serves).
    env.setdefault("HTTP_PORT", "0")
    # The example conversations are dated (August 2026): without this, their deals would be
    # stalled for inactivity as soon as they are stored.
    env.setdefault("STALL_AFTER_DAYS", "0")
    return env


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (STACK_ROOT / "demo-worker.log").open("ab")
    print(f"worker: LLM_MODEL={env['LLM_MODEL']}, logs in {STACK_ROOT / 'demo-worker.log'}")
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
    )


async def _publish_and_wait(
    settings: Settings,
    info: StackInfo,
    env: dict[str, str],
    examples: Path,
    worker: subprocess.Popen[bytes],
) -> None:
    turns = read_turns(examples, max_turn_chars=settings.max_turn_chars)
    if turns.problems:
        raise ConfigurationError(f"{examples} has invalid lines: {turns.problems[:3]}")
    on_stack = settings.model_copy(
        update={
            "kafka_bootstrap_servers": info.kafka_bootstrap_servers,
            "database_url": info.database_url,
        }
    )
    await publish_turns(turns.valid, on_stack)
    tenants = sorted({turn.tenant_id for turn, _ in turns.valid}, key=str)
    expected = len({turn.event_id for turn, _ in turns.valid})
    print(f"published {len(turns.valid)} turns of {len(tenants)} tenants; waiting for the worker")
    async with bootstrap(on_stack, pool_size=2) as components:
        repository = components.repository()
        await _wait_until_applied(repository, tenants, expected, worker)
        for tenant in tenants:
            print()
            states = await repository.list_states_by_tenant(tenant)
            print(render_pipeline(tenant, states, settings.stage_criteria))


async def applied_turns(repository: ConversationStateRepository, tenants: list[UUID]) -> int:
    states = [s for tenant in tenants for s in await repository.list_states_by_tenant(tenant)]
    return sum(state.interaction_count for state in states)


async def _wait_until_applied(
    repository: ConversationStateRepository,
    tenants: list[UUID],
    expected: int,
    worker: subprocess.Popen[bytes],
) -> None:
    deadline = time.monotonic() + APPLY_DEADLINE_S
    applied = -1
    while applied < expected:
        if worker.poll() is not None:
            raise WorkerError(
                f"the worker exited ({worker.returncode}); see .stack/demo-worker.log"
            )
        if time.monotonic() > deadline:
            raise WorkerError(
                f"only {applied} of {expected} turns applied after {APPLY_DEADLINE_S}s"
            )
        applied = await applied_turns(repository, tenants)
        await asyncio.sleep(0.2)
    print(f"all {expected} turns applied")


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
