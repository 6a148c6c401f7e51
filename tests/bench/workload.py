"""Seeded, reproducible workloads for the benchmark (tests/bench/run.py).

Traffic is time-interleaved the way real traffic is: round k carries turn k of every active
conversation (in a shuffled order) before any turn k + 1, so one conversation's turns are spread
over the whole topic rather than sitting next to each other.

Every turn text ends with a marker `[cN tK]` (conversation N, turn K). The benchmark's fake LLM
reads it to attribute prompt tokens to a conversation's K-th turn; it adds about 4 tokens a turn.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

BASE_TIME = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# What prospects and reps say, with slots; enough variety that prompts are not all alike.
PROSPECT_LINES = (
    "We have a budget of about ${k}k a year set aside for this.",
    "Our team loses roughly {n} hours a week on manual lead routing.",
    "{name}, our VP of Sales, will sign off on anything above ${k}k.",
    "We need to be live before the end of Q{q}, ideally sooner.",
    "The main requirements are SSO, an audit log and a Salesforce integration.",
    "Honestly the spreadsheets are costing us deals; we missed {n} renewals last quarter.",
    "Procurement will want a security review and two references before the contract.",
    "{name} has been pushing internally for a tool like yours since January.",
    "If it cuts our response time by {n}% it pays for itself within a year.",
    "Can you send over pricing for {n} seats and the enterprise tier?",
    "We are also looking at two other vendors, so price matters.",
    "Thanks, that makes sense. Let me check with the team and come back to you.",
)
REP_LINES = (
    "How are you handling lead routing today?",
    "Who else would be involved in evaluating a tool like this?",
    "What would success look like for you six months from now?",
    "Is there a budget allocated for this initiative already?",
    "When would you need this up and running?",
    "I can set up a technical deep dive with our solutions engineer next week.",
    "Happy to share a case study from a team of about {n} reps.",
    "What happens if this problem is not solved this year?",
)
NAMES = ("Dana Whitfield", "Priya Raman", "Marcus Chen", "Sofia Alvarez", "Tom Becker")
CHANNELS = ("email", "chat", "call", "meeting")


@dataclass(frozen=True, kw_only=True)
class Conversation:
    number: int
    tenant_id: uuid.UUID
    account_id: str
    contact_id: str
    turns: int  # how many turns it has in the workload
    start_round: int = 0


def _fill(line: str, rng: random.Random) -> str:
    return line.format(
        k=rng.choice((25, 40, 50, 80, 120)),
        n=rng.randint(3, 40),
        q=rng.randint(1, 4),
        name=rng.choice(NAMES),
    )


def turn_text(rng: random.Random, number: int, sequence: int, speaker: str) -> str:
    bank = PROSPECT_LINES if speaker == "prospect" else REP_LINES
    sentences = [_fill(rng.choice(bank), rng) for _ in range(rng.randint(1, 2))]
    return f"{' '.join(sentences)} [c{number} t{sequence}]"


def conversations(
    rng: random.Random, *, count: int, tenants: int, turns: int
) -> list[Conversation]:
    """`count` conversations over `tenants` tenants whose lengths add up to `turns`."""
    tenant_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(tenants)]
    mean = turns / count
    lengths = [max(1, round(rng.uniform(0.5, 1.5) * mean)) for _ in range(count)]
    _adjust_total(lengths, turns, rng)
    return [
        Conversation(
            number=n,
            tenant_id=tenant_ids[n % tenants],
            account_id=f"acct-{n // 3:04d}",  # a few contacts per account
            contact_id=f"contact-{n:05d}",
            turns=length,
        )
        for n, length in enumerate(lengths)
    ]


def _adjust_total(lengths: list[int], total: int, rng: random.Random) -> None:
    """Nudge random conversations by one turn until the lengths sum to `total` exactly."""
    while (diff := total - sum(lengths)) != 0:
        i = rng.randrange(len(lengths))
        if diff > 0:
            lengths[i] += 1
        elif lengths[i] > 1:
            lengths[i] -= 1


def payload(conv: Conversation, sequence: int, rng: random.Random) -> dict[str, Any]:
    speaker = "rep" if sequence % 2 else "prospect"
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "tenant_id": str(conv.tenant_id),
        "account_id": conv.account_id,
        "contact_id": conv.contact_id,
        "contact_email": f"{conv.contact_id}@example.com",
        "contact_name": f"Contact {conv.number}",
        "channel": CHANNELS[conv.number % len(CHANNELS)],
        "speaker": speaker,
        "text": turn_text(rng, conv.number, sequence, speaker),
        "occurred_at": (BASE_TIME + timedelta(minutes=conv.start_round + sequence)).isoformat(),
        "sequence": sequence,
    }


def interleave(convs: list[Conversation], rng: random.Random) -> list[dict[str, Any]]:
    """Round by round: turn k of every active conversation (shuffled) before any turn k + 1."""
    out: list[dict[str, Any]] = []
    last_round = max(c.start_round + c.turns for c in convs)
    for round_ in range(last_round):
        active = [c for c in convs if c.start_round <= round_ < c.start_round + c.turns]
        rng.shuffle(active)
        out.extend(payload(c, round_ - c.start_round + 1, rng) for c in active)
    return out


def backlog(*, turns: int, conversations_: int, tenants: int, seed: int) -> list[dict[str, Any]]:
    """W1: every conversation active from the start, lengths around turns / conversations."""
    rng = random.Random(seed)
    return interleave(conversations(rng, count=conversations_, tenants=tenants, turns=turns), rng)


def live(*, turns: int, conversations_: int, tenants: int, seed: int) -> list[dict[str, Any]]:
    """W2: the same shape; the benchmark publishes it at a steady rate instead of up front."""
    return backlog(turns=turns, conversations_=conversations_, tenants=tenants, seed=seed)


def long_conversations(*, count: int, turns: int, seed: int) -> list[dict[str, Any]]:
    """W3: a few conversations of `turns` turns each, for prompt growth from turn 10 to 200."""
    rng = random.Random(seed)
    tenant_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    convs = [
        Conversation(
            number=n,
            tenant_id=tenant_id,
            account_id=f"long-{n:02d}",
            contact_id=f"long-contact-{n:02d}",
            turns=turns,
        )
        for n in range(count)
    ]
    return interleave(convs, rng)
