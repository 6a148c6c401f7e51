"""The operator commands against a running worker: `dlq list|replay` and `reextract`."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tests.fakes.llm_server import ErrorReply, FakeLLMServer, request_text
from tests.harness import (
    REPO_ROOT,
    TopicReader,
    Topics,
    WorkerProcess,
    applied_turns,
    fetch,
    produce,
    turn,
)
from tests.waiting import eventually

StartWorker = Callable[..., WorkerProcess]

BUDGET: dict[str, Any] = {
    "bant": {"budget_identified": True, "budget_confidence": 0.7, "budget_range": "$50k"},
    "meddic": {},
    "overall_confidence": 0.4,
}
_FIRST_TURN = re.compile(r"<turn [^>]*>\n(?P<text>.*?)\n</turn>", re.S)


def budget_quoting_the_first_turn(request: dict[str, Any]) -> dict[str, Any]:
    """BUDGET, with the first turn sent as its evidence (a claim without one changes nothing)."""
    found = _FIRST_TURN.search(request_text(request))
    assert found is not None
    return {**BUDGET, "bant": {**BUDGET["bant"], "budget_evidence": [found.group("text")]}}


async def cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m worker ARGS` with the worker's settings."""
    command = [sys.executable, "-m", "worker", *args]
    return await asyncio.to_thread(
        subprocess.run, command, env=dict(env), cwd=REPO_ROOT, capture_output=True, text=True
    )


async def pending_turns(database_url: str) -> int:
    rows = await fetch(
        database_url,
        "SELECT count(*) AS n FROM tenant.conversation_turns WHERE extracted_at IS NULL",
    )
    return int(rows[0]["n"])


async def test_dlq_list_shows_dead_letters_and_replay_republishes_fixed_ones(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    tmp_path: Path,
) -> None:
    tenant = uuid.uuid4()
    no_email = turn(tenant, "acme", "ann", 0, "hello")
    del no_email["contact_email"]
    too_long = turn(tenant, "acme", "bob", 0, "x" * 101)
    worker = start_worker(MAX_TURN_CHARS="100")
    async with TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.dlq) as dlq:
        await produce(
            kafka_bootstrap_servers, topics.turns, [turn(tenant, "acme", "cy", 0, "hi"), no_email]
        )
        await produce(kafka_bootstrap_servers, topics.turns, [too_long])
        await eventually(dlq.count, lambda n: n == 2, what="2 dead letters")

    listed = await cli(worker.env, "dlq", "list")
    assert listed.returncode == 0, listed.stderr
    assert "2 dead letter(s)" in listed.stdout
    assert "invalid_event" in listed.stdout and "too_large" in listed.stdout
    assert "contact_email" in listed.stdout  # the detail says what is wrong

    exported = await cli(worker.env, "dlq", "list", "--json")
    letters = [json.loads(line) for line in exported.stdout.splitlines()]
    for letter in letters:  # the operator fixes the payload that lacks an email
        value = json.loads(letter["value"])
        if "contact_email" not in value:
            letter["value"] = json.dumps({**value, "contact_email": "ann@example.com"})
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_text("".join(json.dumps(letter) + "\n" for letter in letters))
    replayed = await cli(worker.env, "dlq", "replay", "--file", str(fixed))
    assert replayed.returncode == 1, "one letter is still invalid"
    assert "re-published 1 of 2" in replayed.stdout
    assert "still invalid" in replayed.stderr and "text" in replayed.stderr
    await eventually(lambda: applied_turns(database_url), lambda n: n == 2, what="fixed turn")

    # The limit is raised: replaying from the topic now republishes the long turn.
    assert worker.stop() == 0
    raised = start_worker(MAX_TURN_CHARS="1000")
    replayed = await cli(raised.env, "dlq", "replay", "--error", "too_large")
    assert replayed.returncode == 0, replayed.stderr
    assert "re-published 1 of 1" in replayed.stdout
    await eventually(lambda: applied_turns(database_url), lambda n: n == 3, what="long turn")


async def test_reextract_writes_new_versions_for_failed_extractions(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    tenant = uuid.uuid4()
    fake_llm.reply_builder = lambda request: ErrorReply(status=500)
    texts = ["we have a budget", "fifty thousand dollars", "tell me more"]
    sent = [
        turn(tenant, "acme", "ann", 0, texts[0]),
        turn(tenant, "acme", "ann", 1, texts[1]),
        turn(tenant, "globex", "bob", 0, texts[2]),
    ]
    async with TopicReader(
        bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
    ) as updates:
        worker = start_worker()
        await produce(kafka_bootstrap_servers, topics.turns, sent)
        await eventually(lambda: applied_turns(database_url), lambda n: n == 3, what="3 turns")
        assert await pending_turns(database_url) == 3
        before = {
            r["account_id"]: r["version"]
            for r in await fetch(
                database_url, "SELECT account_id, version FROM tenant.conversation_states"
            )
        }

        fake_llm.reply_builder = budget_quoting_the_first_turn
        done = await cli(worker.env, "reextract", str(tenant))
        assert done.returncode == 0, done.stderr
        assert "2 conversation(s): 2 new version(s), 0 failed" in done.stdout
        assert await pending_turns(database_url) == 0
        states = await fetch(
            database_url,
            "SELECT account_id, version, interaction_count, qualification_data"
            " FROM tenant.conversation_states",
        )
        assert {r["account_id"]: r["version"] for r in states} == {
            account: version + 1 for account, version in before.items()
        }
        assert {r["account_id"]: r["interaction_count"] for r in states} == {"acme": 2, "globex": 1}
        assert all('"budget_identified": true' in r["qualification_data"] for r in states)

        async def events_so_far() -> list[dict[str, Any]]:
            return updates.json_values()

        events = await eventually(
            events_so_far,
            lambda values: sum(v["extraction"]["status"] == "ok" for v in values) == 2,
            what="the re-extraction events",
        )

        again = await cli(worker.env, "reextract", str(tenant))
        assert "0 conversation(s)" in again.stdout, "nothing is pending any more"
        calls = fake_llm.received
        everything = await cli(worker.env, "reextract", str(tenant), "acme", "ann", "--all")
        assert "1 conversation(s): 1 new version(s)" in everything.stdout

    reextracted = [v for v in events if v["extraction"]["status"] == "ok"]
    assert all(v["turn_event_ids"] == [] for v in reextracted)
    assert {v["extraction"]["turns"] for v in reextracted} == {1, 2}
    assert fake_llm.received == calls + 1
    prompt = "\n".join(str(m.get("content")) for m in fake_llm.requests[-1]["messages"])
    assert texts[0] in prompt and texts[1] in prompt and texts[2] not in prompt
