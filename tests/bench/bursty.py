"""W4, bursty live chat: what an LLM call costs per turn, today and lean, in the same run.

    .venv/bin/python -m tests.bench.run --scenarios W4 [--quick]

About 500 conversations, each a series of bursts of 2-6 turns a few seconds apart with quiet
between them, about 50 turns/s overall. The worker talks to the fake LLM (its own process) as
`anthropic/claude-sonnet-4-5` over the Anthropic Messages API, so the `cache_control` path
runs; the fake answers in the schema it was sent and reports Anthropic-style cache usage.

Two configurations, one after the other on the same workload:
- today: `LLM_RESPONSE_SCHEMA=full`, `EXTRACT_DEBOUNCE_MS=0`, and a fake that caches nothing
  (the worker before prompt caching sent no cache markers);
- lean: the lean schema, prompt caching, `EXTRACT_DEBOUNCE_MS=5000`, `EXTRACT_MAX_WAIT_MS=30000`.

Figures: LLM calls per turn; prompt, cache-read, cache-write and completion tokens per call
(from the `extraction` info of the `qualification.updated` events); dollars per 1,000 turns at
LiteLLM's prices for the model (worker/extract/pricing.py, cache prices included); update
latency from the last turn of a burst to the first update that names it, p50/p95/p99.

The quiet between bursts is 15-45 s rather than the 1-3 minutes of real chat: with 500
conversations that keeps the rate near 50 turns/s in a run of a few minutes. Quiet only has
to be longer than the debounce for the figures to be the same.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from tests.bench.llm import fake_llm, read_log
from tests.bench.measure import UpdateReader, percentile, reap
from tests.bench.workload import Conversation, payload
from tests.harness import Topics
from worker.extract.pricing import TokenUsage, token_prices

MODEL = "anthropic/claude-sonnet-4-5"
LATENCY_MS = 800.0
NO_CACHE = 10**9  # a cacheable prefix this long never occurs


@dataclass(frozen=True, kw_only=True)
class BurstPlan:
    conversations: int = 500
    seconds: float = 120.0  # how long the producer runs
    burst_turns: tuple[int, int] = (2, 6)
    turn_gap_s: tuple[float, float] = (1.0, 4.0)
    quiet_s: tuple[float, float] = (15.0, 45.0)
    seed: int = 15


@dataclass(frozen=True, kw_only=True)
class Timed:
    at: float  # seconds after the producer starts
    payload: dict[str, Any]
    ends_burst: bool


@dataclass(frozen=True, kw_only=True)
class Configuration:
    name: str
    env: dict[str, str]
    cache: bool
    debounce_ms: int


CONFIGURATIONS = (
    Configuration(
        name="W4-today",
        env={"LLM_RESPONSE_SCHEMA": "full", "EXTRACT_DEBOUNCE_MS": "0"},
        cache=False,
        debounce_ms=0,
    ),
    Configuration(
        name="W4-lean",
        # A burst lasts up to 20 s (5 gaps of up to 4 s): the maximum wait is set above that,
        # so a burst is one extraction (README, "How to choose the debounce").
        env={
            "LLM_RESPONSE_SCHEMA": "lean",
            "EXTRACT_DEBOUNCE_MS": "5000",
            "EXTRACT_MAX_WAIT_MS": "30000",
        },
        cache=True,
        debounce_ms=5000,
    ),
)


def bursts(plan: BurstPlan) -> list[Timed]:
    """Every turn of the workload with the moment it is published, in that order."""
    rng = random.Random(plan.seed)
    tenants = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(4)]
    timed: list[Timed] = []
    for number in range(plan.conversations):
        conv = Conversation(
            number=number,
            tenant_id=tenants[number % len(tenants)],
            account_id=f"acct-{number // 3:04d}",
            contact_id=f"contact-{number:05d}",
            turns=0,
        )
        at = rng.uniform(0, plan.quiet_s[1])  # conversations start staggered
        sequence = 1
        while at < plan.seconds:
            size = rng.randint(*plan.burst_turns)
            for index in range(size):
                last = index == size - 1
                timed.append(Timed(at=at, payload=payload(conv, sequence, rng), ends_burst=last))
                sequence += 1
                at += 0 if last else rng.uniform(*plan.turn_gap_s)
            at += rng.uniform(*plan.quiet_s)
    return sorted(timed, key=lambda t: t.at)


@dataclass(kw_only=True)
class EventReader(UpdateReader):
    """Also keeps each distinct event's extraction info (a republished copy counts once)."""

    extractions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _note(self, event: dict[str, Any], now: float) -> None:
        super()._note(event, now)
        if event.get("extraction") and event["account_id"] != "warm-up":
            self.extractions.setdefault(event["event_id"], event["extraction"])


async def publish_on_schedule(
    bootstrap_servers: str, topic: str, timed: list[Timed]
) -> dict[str, float]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, enable_idempotence=False, linger_ms=2
    )
    await producer.start()
    sent: dict[str, float] = {}
    try:
        futures = []
        start = time.monotonic()
        for item in timed:
            if (delay := start + item.at - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            p = item.payload
            sent[p["event_id"]] = time.monotonic()
            key = f"{p['tenant_id']}:{p['account_id']}:{p['contact_id']}".encode()
            futures.append(await producer.send(topic, value=orjson.dumps(p), key=key))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


async def run_configuration(
    stack: Any, config: Configuration, timed: list[Timed], out: Path
) -> dict[str, Any]:
    from tests.bench.run import PARTITIONS, REPO_ROOT, wait_for_pool, wait_until, warm_up_turn
    from tests.bench.run import worker_env as base_env

    database = await stack.new_database(config.name)
    topics = Topics.unique()
    await topics.create(stack.broker.bootstrap_servers, partitions=PARTITIONS)
    request_log = out / "logs" / f"{config.name}-llm.jsonl"
    cache_min = 1024 if config.cache else NO_CACHE
    with fake_llm(latency_ms=LATENCY_MS, log_path=request_log, cache_min_tokens=cache_min) as llm:
        env = base_env(stack, database, topics, llm.base_url)
        env |= {"LLM_MODEL": MODEL, "LLM_API_BASE": llm.anthropic_base_url, **config.env}
        reader = EventReader(
            bootstrap_servers=stack.broker.bootstrap_servers,
            topic=topics.updates,
            partitions=PARTITIONS,
        )
        await reader.start()
        log = (out / "logs" / f"{config.name}-worker.log").open("wb")
        worker = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "worker", "run"], cwd=REPO_ROOT, env=env, stdout=log, stderr=log
        )
        log.close()
        try:
            await wait_for_pool(stack, database, worker, workers=1)
            warm = warm_up_turn()
            await publish_on_schedule(
                stack.broker.bootstrap_servers,
                topics.turns,
                [Timed(at=0, payload=warm, ends_burst=True)],
            )
            await wait_until(lambda: warm["event_id"] in reader.seen, time.monotonic() + 60, worker)
            started = time.monotonic()
            sent = await publish_on_schedule(stack.broker.bootstrap_servers, topics.turns, timed)
            produced_s = time.monotonic() - started
            expected = {t.payload["event_id"] for t in timed}
            drain = time.monotonic() + config.debounce_ms / 1000 + 60
            complete = await wait_until(lambda: expected <= reader.seen.keys(), drain, worker)
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
            reap(worker.pid)
            await reader.stop()
    requests = [r for r in read_log(request_log) if all(c != 999_999 for c, _ in r["refs"])]
    return summarize(config, timed, sent, reader, requests, produced_s, complete)


def summarize(
    config: Configuration,
    timed: list[Timed],
    sent: dict[str, float],
    reader: EventReader,
    requests: list[dict[str, Any]],
    produced_s: float,
    complete: bool,
) -> dict[str, Any]:
    turns = len(timed)
    extractions = list(reader.extractions.values())
    calls = len(extractions) or 1

    def per_call(field_: str) -> float:
        return sum(e.get(field_) or 0 for e in extractions) / calls

    prices = token_prices(MODEL)
    assert prices is not None, f"LiteLLM lists no price for {MODEL}"
    dollars = sum(
        prices.cost(
            TokenUsage(
                prompt_tokens=e["prompt_tokens"],
                completion_tokens=e["completion_tokens"],
                cache_read_tokens=e.get("cache_read_tokens") or 0,
                cache_write_tokens=e.get("cache_write_tokens") or 0,
            )
        )
        for e in extractions
    )
    latencies = [
        reader.seen[t.payload["event_id"]] - sent[t.payload["event_id"]]
        for t in timed
        if t.ends_burst and t.payload["event_id"] in reader.seen
    ]
    return {
        "name": config.name,
        "configuration": config.env | {"prompt_caching": str(config.cache).lower()},
        "model": MODEL,
        "llm_latency_ms": LATENCY_MS,
        "turns": turns,
        "conversations": len({t.payload["contact_id"] for t in timed}),
        "turns_per_s": round(turns / produced_s, 1),
        "complete": complete,
        "llm_requests": len(requests),
        "extractions": len(extractions),
        "llm_calls_per_turn": round(len(requests) / turns, 3),
        "prompt_tokens_per_call": round(per_call("prompt_tokens")),
        "cache_read_tokens_per_call": round(per_call("cache_read_tokens")),
        "cache_write_tokens_per_call": round(per_call("cache_write_tokens")),
        "completion_tokens_per_call": round(per_call("completion_tokens")),
        "usd_per_1000_turns": round(dollars / turns * 1000, 3),
        "update_latency_s": {
            f"p{q}": round(v, 2) if (v := percentile(latencies, q)) is not None else None
            for q in (50, 95, 99)
        },
        "bursts_measured": len(latencies),
    }


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| configuration | turns | turns/s | LLM calls/turn | prompt tok/call | cache read/call "
        "| cache write/call | completion tok/call | $ per 1,000 turns | update p50 / p95 / p99 s |"
    )
    rows = [head, "|" + "---|" * 10]
    for r in results:
        lat = r["update_latency_s"]
        rows.append(
            f"| {r['name']} | {r['turns']} | {r['turns_per_s']} | {r['llm_calls_per_turn']} "
            f"| {r['prompt_tokens_per_call']} | {r['cache_read_tokens_per_call']} "
            f"| {r['cache_write_tokens_per_call']} | {r['completion_tokens_per_call']} "
            f"| {r['usd_per_1000_turns']} | {lat['p50']} / {lat['p95']} / {lat['p99']} |"
        )
    if len(results) == 2 and results[1]["usd_per_1000_turns"]:
        ratio = results[0]["usd_per_1000_turns"] / results[1]["usd_per_1000_turns"]
        rows.append(f"\n{results[1]['name']} is {ratio:.1f}x cheaper per 1,000 turns.")
    return "\n".join(rows)


async def run_w4(stack: Any, out: Path, *, quick: bool) -> list[dict[str, Any]]:
    plan = BurstPlan(seconds=60.0) if quick else BurstPlan()
    timed = bursts(plan)
    results = []
    for config in CONFIGURATIONS:
        print(f"running {config.name} ({len(timed)} turns) …", flush=True)
        results.append(await run_configuration(stack, config, timed, out))
    (out / "w4.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(table(results), flush=True)
    return results
