"""`make bench`: the worker end to end under load, against a per-turn baseline in the same run.

    .venv/bin/python -m tests.bench.run [--quick] [--scenarios W1-0ms W2-0ms W4 ...] [--turns N]
        [--profile]

Brings up its own embedded stack (PostgreSQL + Tansu broker) in a temp directory, a fake
OpenAI-compatible LLM with a fixed latency in its own process, and the real worker
(`python -m worker run`) with its default settings. Per scenario it publishes a seeded workload,
reads `qualification.updated` back, and measures: turns/s end to end, LLM calls and prompt
tokens per turn, produce→update latency, worker CPU and peak RSS, PostgreSQL commits per turn.
Prints a table, writes bench/results.json and bench/results.png. Reports; asserts nothing.
`--profile` samples the worker with py-spy and prints its CPU per extraction split into ours,
client stack and runtime (tests/bench/profile.py).
W4 (bursty live chat, today's configuration against the lean one: tests/bench/bursty.py) runs
last and writes bench/w4.json; `--scenarios W4` runs only it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import asyncpg
import psutil  # type: ignore[import-untyped]

from devtools.stack import BrokerProcess, PostgresProcess, start_broker, start_postgres
from tests.bench import profile, report
from tests.bench.bursty import run_w4
from tests.bench.llm import fake_llm, read_log
from tests.bench.measure import (
    Publisher,
    Run,
    Samples,
    UpdateReader,
    backends,
    commits,
    peak_rss_by_process,
    produce_all,
    reap,
    statement_calls,
    statements,
    wait_for_no_backends,
)
from tests.bench.workload import Conversation, backlog, live, long_conversations, payload
from tests.harness import Topics
from worker.store.postgres import migrate

REPO_ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 8  # what `stack up` creates
W4 = "W4"  # the bursty workload's name for --scenarios (both of its configurations)
WARM_UP_CONVERSATION = 999_999  # its marker is [c999999 t1]; excluded from every figure


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    workload: str  # W1 backlog, W2 live, W3 long conversations
    latency_ms: float
    cap_s: float  # processing time allowed after the worker is ready
    # backlog: everything published before the worker starts; rate: a steady live producer;
    # lockstep: one round of turns at a time, the next once the worker announced them all.
    mode: Literal["backlog", "rate", "lockstep"] = "backlog"
    rate: float = 0.0  # turns/s, for mode "rate"

    @property
    def live(self) -> bool:
        return self.mode != "backlog"

    env: Mapping[str, str] = field(default_factory=dict)  # worker settings beyond the defaults
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class Plan:
    w1_turns: int
    w1_conversations: int
    w2_rate: float
    w2_seconds: float
    w2_conversations: int
    w3_conversations: int
    w3_turns: int
    w3_cap_s: float
    w1_cap_s: float
    baseline_cap_s: float
    drain_s: float
    seed: int

    def scenarios(self) -> list[Scenario]:
        w1 = Scenario(name="W1-0ms", workload="W1", latency_ms=0, cap_s=self.w1_cap_s)
        w2 = Scenario(
            name="W2-0ms",
            workload="W2",
            latency_ms=0,
            cap_s=self.w2_seconds + self.drain_s,
            mode="rate",
            rate=self.w2_rate,
        )
        w3 = Scenario(
            name="W3-tokens",
            workload="W3",
            latency_ms=0,
            cap_s=self.w3_cap_s,
            mode="lockstep",
        )
        baseline = replace(
            w1,
            name="W1-baseline",
            cap_s=self.baseline_cap_s,
            env={"BATCH_MAX_RECORDS": "1"},
            note="one extraction per turn (BATCH_MAX_RECORDS=1)",
        )
        return [
            w1,
            baseline,
            replace(w1, name="W1-800ms", latency_ms=800),
            w2,
            replace(w2, name="W2-800ms", latency_ms=800),
            # Half the rate, same duration: the steady state of a worker that keeps up.
            replace(w2, name="W2-0ms-half", workload="W2-half", rate=self.w2_rate / 2),
            w3,
        ]

    def payloads(self, workload: str) -> list[dict[str, Any]]:
        if workload == "W1":
            return backlog(
                turns=self.w1_turns, conversations_=self.w1_conversations, tenants=4, seed=self.seed
            )
        if workload in ("W2", "W2-half"):
            rate = self.w2_rate / 2 if workload == "W2-half" else self.w2_rate
            turns = int(rate * self.w2_seconds)
            return live(
                turns=turns, conversations_=self.w2_conversations, tenants=4, seed=self.seed + 1
            )
        return long_conversations(
            count=self.w3_conversations, turns=self.w3_turns, seed=self.seed + 2
        )


FULL = Plan(
    w1_turns=20_000,
    w1_conversations=1_000,
    w2_rate=200,
    w2_seconds=60,
    w2_conversations=2_000,
    w3_conversations=10,
    w3_turns=200,
    w3_cap_s=100,
    w1_cap_s=150,
    baseline_cap_s=30,
    drain_s=15,
    seed=6,
)
QUICK = replace(
    FULL,
    w1_turns=4_000,
    w1_conversations=200,
    w2_rate=100,
    w2_seconds=15,
    w2_conversations=300,
    w3_conversations=4,
    w3_cap_s=90,
    w1_cap_s=45,
    baseline_cap_s=15,
    drain_s=10,
)


# --- the stack -----------------------------------------------------------------------------


@dataclass(kw_only=True)
class Stack:
    postgres: PostgresProcess
    broker: BrokerProcess
    admin: asyncpg.Connection
    template: str
    logs: Path

    def url(self, database: str) -> str:
        return self.postgres.url.rsplit("/", 1)[0] + f"/{database}"

    async def new_database(self, label: str) -> str:
        name = f"bench_{label.replace('-', '_').lower()}_{uuid.uuid4().hex[:6]}"
        await self.admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return name


@contextlib.asynccontextmanager
async def embedded_stack(root: Path, *, durable: bool, logs: Path) -> AsyncIterator[Stack]:
    postgres = await asyncio.to_thread(start_postgres, root / "postgres", durable=durable)
    broker = await asyncio.to_thread(start_broker, root / "broker")
    try:
        await count_statements(postgres)
        admin = await asyncpg.connect(postgres.url)
        await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        template = "bench_template"
        await admin.execute(f'CREATE DATABASE "{template}"')
        conn = await asyncpg.connect(postgres.url.rsplit("/", 1)[0] + f"/{template}")
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield Stack(postgres=postgres, broker=broker, admin=admin, template=template, logs=logs)
        await admin.close()
    finally:
        broker.stop()
        postgres.stop()


async def count_statements(postgres: PostgresProcess) -> None:
    """pg_stat_statements counts every statement the worker sends (preloaded: one restart)."""
    conn = await asyncpg.connect(postgres.url)
    try:
        await conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    finally:
        await conn.close()
    await asyncio.to_thread(postgres.stop)
    await asyncio.to_thread(postgres.start)


# --- one scenario ----------------------------------------------------------------------------


def worker_env(stack: Stack, database: str, topics: Topics, llm_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "BATCH_", "DB_"))}
    return {
        **env,
        "DATABASE_URL": stack.url(database),
        "KAFKA_BOOTSTRAP_SERVERS": stack.broker.bootstrap_servers,
        "TURN_TOPIC": topics.turns,
        "UPDATE_TOPIC": topics.updates,
        "DLQ_TOPIC": topics.dlq,
        "OVERRIDE_TOPIC": topics.overrides,
        "CONSUMER_GROUP": f"bench-{topics.turns}",
        "LLM_MODEL": "openai/fake",
        "LLM_API_BASE": llm_url,
        "LLM_API_KEY": "x",
        "LLM_MODE": "tools",  # the fake stands in for a hosted model (auto: JSON for it)
        "LOG_FORMAT": "json",
        "HTTP_PORT": "0",  # no /metrics server: nothing to collide with, nothing to measure
        "STALL_SWEEP_INTERVAL_S": "0",  # the workload's turns are dated in the past
    }


async def wait_until(
    condition: Callable[[], bool], deadline: float, worker: subprocess.Popen[bytes]
) -> bool:
    while not condition():
        if worker.poll() is not None or time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)  # poll
    return True


async def wait_for_pool(
    stack: Stack, database: str, worker: subprocess.Popen[bytes], workers: int
) -> None:
    """The worker is ready once its pool holds a connection (imports and startup are done);
    with `--workers N`, once each of its N processes holds one (the supervisor's own check
    before it spawns them connects too, so counting backends would not do)."""
    while not await backends(stack.admin, database) or not pools_open(worker.pid, workers, stack):
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited ({worker.returncode}) during startup")
        await asyncio.sleep(0.02)  # poll


def pools_open(pid: int, workers: int, stack: Stack) -> bool:
    if workers == 1:
        return True
    port = urlsplit(stack.postgres.url).port
    with contextlib.suppress(psutil.Error):
        children = psutil.Process(pid).children()
        connected = [c for c in children if _connected_to(c, port)]
        return len(connected) >= workers
    return False


def _connected_to(process: psutil.Process, port: int | None) -> bool:
    return any(c.raddr and c.raddr.port == port for c in process.net_connections())


def announced(reader: UpdateReader, turns: list[dict[str, Any]]) -> Callable[[], bool]:
    ids = {p["event_id"] for p in turns}
    return lambda: ids <= reader.seen.keys()


async def produce_in_lockstep(
    stack: Stack,
    topic: str,
    payloads: list[dict[str, Any]],
    reader: UpdateReader,
    deadline: float,
    worker: subprocess.Popen[bytes],
) -> dict[str, float]:
    """Round k (turn k of every conversation) once round k - 1 is announced: every extraction
    then carries exactly one new turn, so prompts compare like for like from turn 1 to 200."""
    rounds: dict[int, list[dict[str, Any]]] = {}
    for p in payloads:
        rounds.setdefault(p["sequence"], []).append(p)
    sent: dict[str, float] = {}
    async with Publisher(bootstrap_servers=stack.broker.bootstrap_servers, topic=topic) as out:
        for turns in rounds.values():
            sent |= await out.send(turns)
            if not await wait_until(announced(reader, turns), deadline, worker):
                break
    return sent


def start_profiler(pid: int, output: Path | None) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the worker (and its worker processes, with `--workers N`) from now on
    (its overhead is in another process)."""
    if output is None:
        return None
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        raise SystemExit(f"--profile needs py-spy ({py_spy}): make install brings it (dev extras)")
    command = [str(py_spy), "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
    return subprocess.Popen(  # stopped with a signal, never awaited
        [*command, "--full-filenames", "--subprocesses", "--output", str(output), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def warm_up_turn() -> dict[str, Any]:
    conv = Conversation(
        number=WARM_UP_CONVERSATION,
        tenant_id=uuid.uuid4(),
        account_id="warm-up",
        contact_id="warm-up",
        turns=1,
    )
    return payload(conv, 1, random.Random(0))


async def run_scenario(
    stack: Stack,
    sc: Scenario,
    payloads: list[dict[str, Any]],
    out: Path,
    *,
    profile: bool,
    workers: int = 1,
) -> dict[str, Any]:
    database = await stack.new_database(sc.name)
    topics = Topics.unique()
    await topics.create(stack.broker.bootstrap_servers, partitions=PARTITIONS)
    request_log = out / "logs" / f"{sc.name}-llm.jsonl"
    with fake_llm(latency_ms=sc.latency_ms, log_path=request_log) as llm:
        reader = UpdateReader(
            bootstrap_servers=stack.broker.bootstrap_servers,
            topic=topics.updates,
            partitions=PARTITIONS,
        )
        await reader.start()
        try:
            target = Target(
                database=database,
                topics=topics,
                llm_url=llm.base_url,
                llm_pid=llm.process.pid,
                profile_to=out / f"profile-{sc.name}.txt" if profile else None,
                workers=workers,
            )
            run = await _drive(stack, sc, payloads, target, reader, out)
        finally:
            await reader.stop()
    await wait_for_no_backends(stack.admin, database, within_s=10)
    run.commits = await commits(stack.admin, database)
    run.statements = await statements(stack.admin, database)
    calls = await statement_calls(stack.admin, database)
    (out / "logs" / f"{sc.name}-statements.txt").write_text(
        "".join(f"{n:>8} {query[:160]}\n" for n, query in calls)
    )
    run.requests = [
        r for r in read_log(request_log) if all(c != WARM_UP_CONVERSATION for c, _ in r["refs"])
    ]
    run.stored_turns = await _stored_turns(stack, database, run.warm_up)
    summary = report.summarize(sc, run, payloads)
    summary["worker_processes"] = workers
    if target.profile_to is not None and target.profile_to.exists():
        summary["cpu_ms_per_extraction"] = cpu_split(summary, target.profile_to)
    return summary


def cpu_split(summary: dict[str, Any], stacks: Path) -> dict[str, float]:
    """The worker's CPU per LLM call (rusage), split as the profile's samples are."""
    cpu_s = summary["worker_cpu_s_per_1k_turns"] * summary["turns_applied"] / 1000
    split = profile.read(stacks, cpu_s / max(1, summary["llm_calls"]) * 1000)
    print("  " + profile.one_line(summary["name"], split), flush=True)
    return split


async def _stored_turns(stack: Stack, database: str, warm_up: bool) -> int:
    conn = await asyncpg.connect(stack.url(database))
    try:
        n = int(await conn.fetchval("SELECT count(*) FROM tenant.conversation_turns"))
    finally:
        await conn.close()
    return n - (1 if warm_up else 0)


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where one scenario's worker reads, writes and calls."""

    database: str
    topics: Topics
    llm_url: str
    llm_pid: int
    profile_to: Path | None = None  # py-spy's collapsed stacks of the worker, when asked
    workers: int = 1  # `python -m worker run --workers N`


async def _drive(
    stack: Stack,
    sc: Scenario,
    payloads: list[dict[str, Any]],
    target: Target,
    reader: UpdateReader,
    out: Path,
) -> Run:
    database, topics, llm_pid = target.database, target.topics, target.llm_pid
    sent: dict[str, float] = {}
    if sc.mode == "backlog":  # the backlog is all there before the worker starts
        sent = await produce_all(stack.broker.bootstrap_servers, topics.turns, payloads)
    env = {**worker_env(stack, database, topics, target.llm_url), **sc.env}
    log = (out / "logs" / f"{sc.name}-worker.log").open("wb")
    spawned = time.monotonic()
    # Popen, not asyncio's subprocess: we reap it ourselves (os.wait4) to read its rusage.
    command = [sys.executable, "-m", "worker", "run", "--workers", str(target.workers)]
    worker = subprocess.Popen(  # noqa: ASYNC220
        command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log
    )
    log.close()
    try:
        await wait_for_pool(stack, database, worker, target.workers)
        warm_up = sc.live
        if warm_up:  # live traffic starts once the worker consumes: a turn must come back first
            turn = warm_up_turn()
            await produce_all(stack.broker.bootstrap_servers, topics.turns, [turn])
            await wait_until(lambda: turn["event_id"] in reader.seen, time.monotonic() + 60, worker)
        ready = Samples.take(worker.pid, llm_pid, stack.postgres.pid, stack.broker.pid)
        profiler = start_profiler(worker.pid, target.profile_to)
        expected = {p["event_id"] for p in payloads}
        deadline = ready.at + sc.cap_s
        producing = None
        if sc.mode == "rate":
            producing = asyncio.create_task(
                produce_all(stack.broker.bootstrap_servers, topics.turns, payloads, sc.rate)
            )
        elif sc.mode == "lockstep":
            producing = asyncio.create_task(
                produce_in_lockstep(stack, topics.turns, payloads, reader, deadline, worker)
            )
        done = await wait_until(lambda: expected <= reader.seen.keys(), deadline, worker)
        if producing is not None:
            sent = await producing
        end = Samples.take(worker.pid, llm_pid, stack.postgres.pid, stack.broker.pid)
        rss = peak_rss_by_process(worker.pid)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            profiler.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        usage = reap(worker.pid)
        worker.returncode = usage.exit_code
    return Run(
        spawned=spawned,
        ready=ready,
        end=end,
        complete=done,
        sent=sent,
        seen={k: v for k, v in reader.seen.items() if k in expected},
        events=reader.events,
        worker_total_cpu_s=usage.cpu_s,
        worker_peak_rss_mb=max(rss.values(), default=usage.peak_rss_mb),
        worker_rss_by_process=sorted(rss.values(), reverse=True),
        exit_code=usage.exit_code,
        warm_up=warm_up,
    )


# --- the command ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run (about 2 minutes)")
    parser.add_argument("--scenarios", nargs="+", help="names to run, e.g. W1-0ms W1-baseline")
    parser.add_argument("--turns", type=int, help="W1 turns (conversations scale with them)")
    parser.add_argument("--rate", type=float, help="W2 producer rate, turns/s")
    parser.add_argument("--seconds", type=float, help="W2 producer duration")
    parser.add_argument("--w1-cap-s", type=float, help="time allowed to a W1 scenario")
    parser.add_argument("--baseline-cap-s", type=float, help="time allowed to the baseline")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--set",
        metavar="NAME=VALUE",
        nargs="+",
        default=[],
        help="worker settings for every scenario (the baseline keeps BATCH_MAX_RECORDS=1)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy stacks of the worker into bench/, and its CPU per extraction split by owner",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="start the worker as `python -m worker run --workers N` (N consumer processes)",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench")
    parser.add_argument(
        "--no-durable", action="store_true", help="PostgreSQL with fsync off (as the tests run it)"
    )
    return parser.parse_args(argv)


def plan_from(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    if args.turns:
        ratio = plan.w1_turns / plan.w1_conversations
        conversations = max(1, round(args.turns / ratio))
        plan = replace(plan, w1_turns=args.turns, w1_conversations=conversations)
    overrides = {
        "w2_rate": args.rate,
        "w2_seconds": args.seconds,
        "w1_cap_s": args.w1_cap_s,
        "baseline_cap_s": args.baseline_cap_s,
        "seed": args.seed,
    }
    return replace(plan, **{k: v for k, v in overrides.items() if v is not None})


async def main_async(args: argparse.Namespace) -> int:
    plan = plan_from(args)
    scenarios = plan.scenarios()
    with_w4 = not args.scenarios or W4 in args.scenarios
    if args.scenarios:
        scenarios = [s for s in scenarios if s.name in args.scenarios]
    extra = dict(item.split("=", 1) for item in args.set)
    scenarios = [replace(s, env={**extra, **s.env}) for s in scenarios]
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="qw-bench-") as root:
        async with embedded_stack(
            Path(root), durable=not args.no_durable, logs=args.out / "logs"
        ) as stack:
            workloads: dict[str, list[dict[str, Any]]] = {}
            for sc in scenarios:
                payloads = workloads.setdefault(sc.workload, plan.payloads(sc.workload))
                print(f"running {sc.name} ({len(payloads)} turns) …", flush=True)
                results.append(
                    await run_scenario(
                        stack, sc, payloads, args.out, profile=args.profile, workers=args.workers
                    )
                )
                print("  " + report.one_line(results[-1]), flush=True)
            if with_w4:
                await run_w4(stack, args.out, quick=args.quick)
    elapsed = time.monotonic() - started
    if results:
        document = report.document(plan, results, elapsed, durable=not args.no_durable)
        report.write(document, args.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
