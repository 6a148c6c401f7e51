"""No secrets or PII in logs: turn text, email addresses and the API key never reach them.

The run drives the log lines most likely to leak: provider errors that echo the API key or
the prompt back, output that fails validation while quoting the turns, hallucinated evidence,
dead letters of records full of personal data, a SIGTERM shutdown.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from tests.fakes.llm_server import ErrorReply, Reply, ToolCallReply
from tests.harness import TopicReader, Topics, key_of, produce, turn
from tests.reliability.support import (
    DatabaseProbe,
    QuotingLLM,
    Workers,
    prompt_turns,
    quoting_extraction,
    settle,
    stop_worker,
)
from tests.waiting import eventually

API_KEY = "sk-live-RELIABILITY-3f9c2a7b1e0d"
TENANT = uuid.UUID("5ec2e700-0000-4000-8000-000000000005")
BEHAVIOURS = ("auth", "echo", "garbage", "hallucinate", "ok")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


def leaky_provider(request: dict[str, Any]) -> Reply | dict[str, Any]:
    """Replies as the conversation's name says, each one a way a provider can leak."""
    texts = [text for _, text in prompt_turns(request)]
    said = " ".join(texts)
    if "[auth]" in said:
        return ErrorReply(status=401, message=f"Incorrect API key provided: {API_KEY}")
    if "[echo]" in said:
        return ErrorReply(status=400, message=f"Content rejected: {said}")
    if "[garbage]" in said:
        return ToolCallReply(arguments={"overall_confidence": said, "key_insights": said})
    if "[hallucinate]" in said:
        invented = f"Email the contract to {texts[0].split()[-1]} and cc ceo@secret.example"
        return {
            "bant": {"need_identified": True, "need_confidence": 0.7, "need_evidence": [invented]},
            "meddic": {},
            "overall_confidence": 0.3,
        }
    return quoting_extraction(request)


def personal_turns() -> list[dict[str, Any]]:
    payloads = []
    for behaviour in BEHAVIOURS:
        for sequence in range(3):
            secret = uuid.uuid5(TENANT, f"{behaviour}{sequence}").hex[:10]
            email = f"jane.doe.{secret}@corp.example"
            text = (
                f"My direct line is +1-555-01{sequence}9 and my card ends 4242-{secret}. "
                f"Budget owner is Jane Doe, write to {email} [{behaviour}]"
            )
            payloads.append(
                turn(
                    TENANT,
                    "pii",
                    f"{behaviour}-contact",
                    sequence,
                    text,
                    contact_email=f"contact.{secret}@prospect.example",
                    contact_name=f"Jane Doe {secret}",
                )
            )
    return payloads


async def test_worker_logs_carry_no_turn_text_email_or_api_key(
    workers: Workers,
    llm: QuotingLLM,
    probe: DatabaseProbe,
    kafka_bootstrap_servers: str,
    topics: Topics,
) -> None:
    llm.reply_builder = leaky_provider
    payloads = personal_turns()
    invalid = {**payloads[0], "event_id": "not-a-uuid", "contact_email": "dead.letter@pii.example"}
    async with (
        TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates) as updates,
        TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.dlq) as dlq,
    ):
        worker = workers.start(LLM_API_KEY=API_KEY, LLM_MAX_RETRIES="1")
        records: list[Any] = [*payloads, (key_of(invalid), json.dumps(invalid).encode())]
        await produce(kafka_bootstrap_servers, topics.turns, records)
        await settle(probe, updates, expected_turns=len(payloads), all_extracted=False)
        await eventually(dlq.count, lambda n: n == 1, what="the dead letter")
        assert await stop_worker(worker) == 0

    logs = workers.all_logs()
    # The run did go down the paths that could leak (so the search below can fail).
    for event in (
        "extraction_failed",
        "evidence_dropped",
        "batch_committed",
        "state_version_committed",
    ):
        assert f'"event": "{event}"' in logs, f"no {event} line: the scenario did not run"
    assert "dead.letter@pii.example" in dlq.records[0][1].decode(), "the DLQ keeps the record"

    leaks = workers.secrets_in_logs([*payloads, invalid], API_KEY, "ceo@secret.example")
    assert leaks == [], f"in the logs: {leaks}"
    assert [m.group(0) for m in EMAIL.finditer(logs)] == [], "an email address in the logs"
    for payload in payloads:  # no fragment of a turn either, down to its unique secret
        secret = payload["contact_name"].split()[-1]
        assert secret not in logs, f"a fragment of {payload['contact_id']}'s turn was logged"
    # Nor the conversation key (account and contact ids): logs outlive `forget`. Lines name a
    # conversation by the key's hash, as tenant.erasures does.
    for payload in payloads:
        ids = f"{payload['account_id']}:{payload['contact_id']}"
        assert ids not in logs, f"the conversation key {ids} was logged"
    assert '"conversation_hash": ' in logs
