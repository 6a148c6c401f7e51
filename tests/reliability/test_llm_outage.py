"""LLM outage: hanging requests, HTTP 500s and 429s mid-run; no turn lost, no partition
stalled, every pending turn extracted once the LLM is back."""

from __future__ import annotations

import functools
import operator
from dataclasses import replace

from tests.harness import TopicReader, Topics, produce
from tests.reliability.support import (
    DatabaseProbe,
    QuotingLLM,
    Workers,
    Workload,
    conversation_of,
    describe_problems,
    settle,
    verify_end_state,
)
from tests.waiting import eventually

CONVERSATIONS = 60
# While the LLM is down, the circuit (open after 3 failures in a row) fails the round's other
# conversations open without a request: what a round sends to the dead LLM is the extractions
# in flight when it opened (LLM_CONCURRENCY=8 x LLM_TRANSPORT_ATTEMPTS=2) plus a few probes
# (measured: 20 in the hang round, 0 and 1 in the 500 and 429 rounds, the circuit still open).
# Without the circuit every conversation would send its own (60 to 120 requests a round).
MAX_OUTAGE_REQUESTS_PER_ROUND = CONVERSATIONS // 2
SETTINGS = {
    "LLM_CONCURRENCY": "8",
    "LLM_CIRCUIT_FAILURES": "3",
    "LLM_CIRCUIT_COOLDOWN_S": "1",
    "PENDING_SWEEP_INTERVAL_S": "0.5",
    "PENDING_QUIET_S": "1",
}
FAULTS = {2: "hang", 3: "error-500", 4: "error-429"}  # round: what the LLM does meanwhile


async def test_llm_outage_stores_turns_then_extracts_every_pending_one(
    workers: Workers,
    llm: QuotingLLM,
    probe: DatabaseProbe,
    database_url: str,
    kafka_bootstrap_servers: str,
    topics: Topics,
) -> None:
    """Rounds 0-1 healthy. Round 2 meets requests that hang past the client timeout, round 3
    HTTP 500, round 4 HTTP 429: each outage round must be stored and counted while the LLM is
    still down (the partition moves on, turns pending), and each fault must really have met
    the worker's requests. Then the LLM recovers; rounds 5-7 go to half of the conversations
    only. The other half goes quiet: no new turn will carry its pending turns into an
    extraction, and they must be extracted all the same. At the end every prospect turn's
    quote is in the evidence: nothing was lost or left unextracted."""
    workload = Workload.generate(conversations=CONVERSATIONS, turns_per_conversation=8)
    rounds = workload.rounds
    quiet = set(workload.conversations[CONVERSATIONS // 2 :])
    late_rounds = [[t for t in r if conversation_of(t) not in quiet] for r in rounds[5:]]
    sent_rounds = [*rounds[:5], *late_rounds]
    sent = [t for r in sent_rounds for t in r]

    async with TopicReader(
        bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates
    ) as updates:
        worker = workers.start(**SETTINGS)
        applied = failed_open = 0
        for number in range(5):
            fault = FAULTS.get(number)
            if fault == "hang":
                llm.hang()
            elif fault is not None:
                llm.fail_with(int(fault.split("-")[1]))
            await produce(kafka_bootstrap_servers, topics.turns, rounds[number])
            applied += len(rounds[number])
            await eventually(
                probe.applied,
                functools.partial(operator.eq, applied),
                within_s=60,
                what=f"round {number} stored ({fault or 'healthy'})",
            )
            if fault is None:
                await eventually(probe.pending, lambda n: n == 0, what="healthy rounds extracted")
                continue
            failed_open += len(rounds[number])
            assert await probe.pending() == failed_open
            sent_to_dead_llm = llm.by_mode[fault]  # this round's: each round has its own fault
            print(f"round {number} ({fault}) stored after {sent_to_dead_llm} requests")
            assert sent_to_dead_llm <= MAX_OUTAGE_REQUESTS_PER_ROUND, fault
            await eventually(  # a probe (circuit half-open) or the sweeper meets this fault
                functools.partial(requests_met_by, llm, fault), lambda n: n > 0, what=fault
            )
        outage_requests = sum(llm.by_mode[f] for f in FAULTS.values())
        llm.recover()
        for late in late_rounds:
            await produce(kafka_bootstrap_servers, topics.turns, late)
        await settle(probe, updates, expected_turns=len(sent), within_s=120)
        problems = await verify_end_state(
            database_url,
            sent,
            updates,
            expected_quotes=replace(workload, rounds=sent_rounds).expected_quotes(),
        )

    assert problems == [], describe_problems(problems)
    # Without the circuit breaker each of the 180 failed extractions sends 2 requests.
    assert outage_requests < failed_open, f"{outage_requests} requests to a dead LLM"
    assert worker.alive and len(workers.started) == 1
    statuses = {event["extraction"]["status"] for event in updates.json_values()}
    assert statuses == {"ok", "failed"}
    assert workers.secrets_in_logs(sent, "sk-test-not-a-real-key") == []


async def requests_met_by(llm: QuotingLLM, mode: str) -> int:
    return llm.by_mode[mode]
