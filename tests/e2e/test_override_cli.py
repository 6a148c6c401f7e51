"""`python -m worker override …` against the real broker: what it publishes, and how it refuses
bad arguments (one line on stderr, exit 2, nothing published)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest
import pytest_asyncio

from devtools.stack import create_topics
from schemas import QualificationOverride, conversation_key
from tests.harness import REPO_ROOT, TopicReader
from tests.waiting import eventually


@pytest_asyncio.fixture
async def override_topic(kafka_bootstrap_servers: str) -> str:
    # One partition: records are read back in the order they were published.
    topic = f"overrides-{uuid.uuid4().hex[:10]}"
    await create_topics(kafka_bootstrap_servers, [topic], partitions=1)
    return topic


async def override_cli(
    bootstrap_servers: str, topic: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers, "OVERRIDE_TOPIC": topic}
    command = [sys.executable, "-m", "worker", "override", *args]
    return await asyncio.to_thread(
        subprocess.run, command, env=env, cwd=REPO_ROOT, capture_output=True, text=True
    )


async def test_override_command_publishes_a_valid_override_keyed_by_the_conversation(
    kafka_bootstrap_servers: str, override_topic: str
) -> None:
    tenant = uuid.uuid4()
    async with TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=override_topic) as read:
        done = await override_cli(
            kafka_bootstrap_servers,
            override_topic,
            str(tenant),
            "acme:emea",
            "ann",
            "--actor",
            "user:rep-7",
            "--set",
            "budget.budget_range=$90k",
            "--set",
            "decision_criteria.decision_criteria=SSO",
            "--set",
            "decision_criteria.decision_criteria=SOC 2",
            "--lock",
            "champion",
            "--stage",
            "evaluation",
            "--reason",
            "call with the CFO",
        )
        assert done.returncode == 0, done.stderr
        await eventually(read.count, lambda n: n == 1, what="the published override")

    key, value, _ = read.records[0]
    published = QualificationOverride.model_validate_json(value)
    assert json.loads(done.stdout) == json.loads(value), "prints what it publishes"
    assert key == conversation_key(tenant, "acme:emea", "ann").encode()
    assert (published.tenant_id, published.account_id) == (tenant, "acme:emea")
    assert str(published.actor) == "user:rep-7"
    assert json.loads(value)["set"] == {
        "budget": {"budget_range": "$90k"},
        "decision_criteria": {"decision_criteria": ["SSO", "SOC 2"]},
    }
    assert [d.value for d in published.lock or []] == ["champion"]
    assert published.stage is not None and published.stage.to.value == "evaluation"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--actor", "user:rep-7", "--lock", "budgett"], "unknown dimension 'budgett'"),
        (["--actor", "robot:r2", "--lock", "budget"], "--actor must be TYPE:ID"),
        (["--actor", "user:rep-7", "--set", "budget.budget_rnage=1"], "FIELD one of"),
        (["--actor", "user:rep-7", "--stage", "won", "--reason", "x"], "unknown stage 'won'"),
        (["--actor", "user:rep-7", "--stage", "evaluation"], "--stage needs --reason"),
        (["--actor", "user:rep-7"], "nothing to do"),
        (["--actor", "user:rep-7", "--lock", "need", "--frobnicate"], "unrecognized arguments"),
    ],
)
async def test_bad_override_arguments_are_one_line_on_stderr_and_exit_2(
    kafka_bootstrap_servers: str, override_topic: str, args: list[str], message: str
) -> None:
    refused = await override_cli(
        kafka_bootstrap_servers, override_topic, str(uuid.uuid4()), "acme", "ann", *args
    )
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert len(refused.stderr.splitlines()) == 1 and message in refused.stderr


async def test_a_refused_override_publishes_nothing(
    kafka_bootstrap_servers: str, override_topic: str
) -> None:
    # The good override published after the refused one is the only record on the topic.
    async with TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=override_topic) as read:
        refused = await override_cli(
            kafka_bootstrap_servers, override_topic, "acme-corp", "acme", "ann",
            "--actor", "user:rep-7", "--lock", "budget",
        )  # fmt: skip
        assert refused.returncode == 2 and "TENANT must be a UUID" in refused.stderr
        good = await override_cli(
            kafka_bootstrap_servers, override_topic, str(uuid.uuid4()), "acme", "ann",
            "--actor", "crm:salesforce", "--unlock", "budget",
        )  # fmt: skip
        assert good.returncode == 0, good.stderr
        await eventually(read.count, lambda n: n >= 1, what="the good override")
    assert [json.loads(value)["actor"]["type"] for _, value, _ in read.records] == ["crm"]
