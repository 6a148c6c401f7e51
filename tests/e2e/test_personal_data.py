"""Contact data a run receives stays out of the worker's logs and the published events."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable

from tests.fakes.llm_server import FakeLLMServer, echo_extraction
from tests.harness import TopicReader, Topics, WorkerProcess, applied_turns, fetch, produce, turn
from tests.waiting import eventually

StartWorker = Callable[..., WorkerProcess]

PHONES = ["(415) 555-0132", "+44 20 7946 0958", "650.253.0000"]
EMAILS = ["jane.doe@acme-corp.com", "cfo.office@globex.io"]
TEXTS = [
    # The fake LLM quotes a turn's first sentence as evidence: these sentences hold the data.
    f"Call me on {PHONES[0]} or at {EMAILS[0]} about our need for a shared inbox.",
    f"Email {EMAILS[0]} or my London desk {PHONES[1]} with the pricing.",
    f"Our CFO ({EMAILS[1]}, {PHONES[2]}) signs anything over $80,000.",
]


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def leaks(text: str, contact_emails: list[str]) -> list[str]:
    """The emails and phone numbers that occur in `text`, also as bare digits."""
    bare = digits(text)
    found = [email for email in [*EMAILS, *contact_emails] if email in text]
    found += [phone for phone in PHONES if phone in text or digits(phone)[-10:] in bare]
    return found


async def test_logs_and_events_carry_no_email_or_phone_number_from_the_turns(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    fake_llm.reply_builder = echo_extraction
    tenant = uuid.uuid4()
    sent = [
        turn(tenant, "acme", f"contact-{c}", seq, text)
        for c in range(2)
        for seq, text in enumerate(TEXTS)
    ]
    contact_emails = sorted({t["contact_email"] for t in sent})
    async with TopicReader(
        bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
    ) as updates:
        worker = start_worker(LOG_LEVEL="DEBUG")
        await produce(kafka_bootstrap_servers, topics.turns, sent)
        await eventually(lambda: applied_turns(database_url), lambda n: n == 6, what="6 turns")
        versions = await fetch(
            database_url, "SELECT sum(version) AS n FROM tenant.conversation_states"
        )
        await eventually(updates.count, lambda n: n == versions[0]["n"], what="all events")
        assert worker.stop() == 0

    events = [json.loads(value) for _, value, _ in updates.records]
    quotes = [q for e in events for q in e["qualification"]["bant"]["need_evidence"]]
    assert quotes, "the events carry quotes: the scan below has something to find"
    assert any("[phone]" in q for q in quotes) and any("[email]" in q for q in quotes)
    assert all(e["contact_id"].startswith("contact-") for e in events)
    events_text = "\n".join(value.decode() for _, value, _ in updates.records)
    assert leaks(events_text, contact_emails) == []

    log_text = worker.log_text()
    assert "state_version_committed" in log_text, "the log was written"
    assert leaks(log_text, contact_emails) == []
    # The stored turns keep the original text until retention clears it.
    stored = await fetch(database_url, "SELECT text FROM tenant.conversation_turns")
    assert leaks("\n".join(r["text"] for r in stored), contact_emails) != []
