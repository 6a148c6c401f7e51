"""Shared machinery of the fault-injection suite (issue 5).

- `Workload`: deterministic conversations whose turns carry a unique, quotable first sentence.
- `QuotingLLM`: the fake OpenAI-compatible server, counting requests in flight, whose default
  reply quotes the first sentence of every prospect turn it is shown (so the stored evidence
  tells exactly which turns were extracted).
- `DatabaseProbe`: one open connection that watches the worker's database from outside.
- `Killer`: SIGKILL aimed at a chosen moment (in extraction, inside the write transaction,
  between a state commit and the batch's offset commit, or a seeded random point).
- `verify_end_state`: every promise of the issue checked against the database and the
  `qualification.updated` events a real consumer read; returns the violations found.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import aiohttp
import asyncpg
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas import DIMENSION_FIELDS, ConversationKey, Dimension, update_event_id
from schemas.dimensions import DIMENSIONS
from tests.fakes.llm_server import EMPTY_EXTRACTION, FakeLLMServer
from tests.harness import (
    BASE_TIME,
    TopicReader,
    Topics,
    WorkerProcess,
    fetch,
    key_of,
    turn,
    worker_env,
)
from tests.waiting import eventually

# One seed for the whole suite; override with RELIABILITY_SEED to explore other schedules.
SEED = int(os.environ.get("RELIABILITY_SEED", "20261005"))

JsonObject = dict[str, Any]

# --- the workload ------------------------------------------------------------------------------

_TOPICS = ["onboarding", "reporting", "billing", "forecasting", "security reviews", "handoffs"]
_TEAMS = ["finance", "ops", "sales", "support", "legal", "IT"]


@dataclass(frozen=True, kw_only=True)
class Workload:
    """`conversations` x `turns_per_conversation` valid turns, in `rounds` (turn r of each)."""

    seed: int
    tenants: list[uuid.UUID]
    conversations: list[ConversationKey]
    rounds: list[list[JsonObject]]

    @classmethod
    def generate(
        cls, *, conversations: int, turns_per_conversation: int, tenants: int = 4, seed: int = SEED
    ) -> Workload:
        rng = random.Random(seed)
        tenant_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(tenants)]
        keys = [
            ConversationKey(tenant_ids[i % tenants], f"acct-{i % 37:02d}", f"contact-{i:04d}")
            for i in range(conversations)
        ]
        rounds = [
            [_turn_of(rng, index, key, r) for index, key in enumerate(keys)]
            for r in range(turns_per_conversation)
        ]
        return cls(seed=seed, tenants=tenant_ids, conversations=keys, rounds=rounds)

    @property
    def turns(self) -> list[JsonObject]:
        return [payload for round_ in self.rounds for payload in round_]

    def turns_of(self, key: ConversationKey) -> list[JsonObject]:
        return [t for t in self.turns if conversation_of(t) == key]

    def expected_turns(self) -> dict[ConversationKey, set[str]]:
        expected: dict[ConversationKey, set[str]] = defaultdict(set)
        for payload in self.turns:
            expected[conversation_of(payload)].add(payload["event_id"])
        return expected

    def expected_quotes(self) -> dict[ConversationKey, set[str]]:
        """What QuotingLLM must have put in `need_evidence` once every turn is extracted."""
        quotes: dict[ConversationKey, set[str]] = defaultdict(set)
        for payload in self.turns:
            if payload["speaker"] == "prospect":
                quotes[conversation_of(payload)].add(first_sentence(payload["text"]))
        return quotes


def _turn_of(rng: random.Random, index: int, key: ConversationKey, sequence: int) -> JsonObject:
    speaker = "rep" if sequence % 4 == 3 else "prospect"
    # The first sentence is unique to this turn: it is the quote QuotingLLM extracts.
    text = (
        f"Turn {sequence} of conversation {index}: we need better {rng.choice(_TOPICS)} "
        f"for the {rng.choice(_TEAMS)} team, case {rng.randrange(10**6):06d}. "
        f"Budget talk comes later, maybe {rng.randrange(5, 95)}k."
    )
    return turn(key.tenant_id, key.account_id, key.contact_id, sequence, text, speaker=speaker)


def conversation_of(payload: Mapping[str, Any]) -> ConversationKey:
    return ConversationKey(
        uuid.UUID(str(payload["tenant_id"])), payload["account_id"], payload["contact_id"]
    )


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]


# --- overrides ----------------------------------------------------------------------------------

# What the crash test's people do, in this order, to each conversation they correct: take
# authority, set the budget, move the deal two stages on (a skip the stage machine would refuse
# the AI). None of it touches `need`, the dimension QuotingLLM fills.
OVERRIDE_ACTIONS: list[tuple[str, JsonObject]] = [
    ("user", {"lock": ["authority"]}),
    ("user", {"set": {"budget": {"budget_range": "$90k", "confidence": 0.9}}}),
    ("crm", {"stage": {"to": "qualification", "reason": "the CRM opportunity moved"}}),
]


def override_of(key: ConversationKey, number: int, *, after_turn: int) -> JsonObject:
    """The `number`-th of OVERRIDE_ACTIONS for `key`, said to happen half a minute after the
    conversation's turn `after_turn` (turns happen a minute apart, see `turn`)."""
    actor_type, action = OVERRIDE_ACTIONS[number]
    return {
        "event_id": str(uuid.uuid5(key.tenant_id, f"override:{key.contact_id}:{number}")),
        "tenant_id": str(key.tenant_id),
        "account_id": key.account_id,
        "contact_id": key.contact_id,
        "actor": {"type": actor_type, "id": f"{actor_type}-{key.contact_id}"},
        "occurred_at": (BASE_TIME + timedelta(minutes=after_turn, seconds=30)).isoformat(),
        **action,
    }


@dataclass(kw_only=True)
class OverrideSchedule:
    """Overrides of every `every`-th conversation: action n is due after round `due[n]`, and
    is published once the conversation's first turn is stored (an override of a conversation
    the worker has never seen is dead-lettered, rightly, but that is not what the crash test
    is about). The first `redelivered` ones are published a second time one round later."""

    workload: Workload
    every: int = 7
    due: tuple[int, ...] = (1, 4, 7)
    redelivered: int = 3
    published: list[JsonObject] = field(default_factory=list)  # copies included
    _copied: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if len(self.due) != len(OVERRIDE_ACTIONS):
            raise ValueError("one round per override action")

    @property
    def corrected(self) -> list[ConversationKey]:
        return self.workload.conversations[:: self.every]

    @property
    def overrides(self) -> list[JsonObject]:
        """Every override of the schedule, once each."""
        return [
            override_of(key, number, after_turn=round_)
            for number, round_ in enumerate(self.due)
            for key in self.corrected
        ]

    def due_after(self, round_: int, stored: set[ConversationKey]) -> list[JsonObject]:
        """What to publish after round `round_`: the overrides due by now and not published
        yet whose conversation is in `stored`, then the redeliveries due."""
        done = {o["event_id"] for o in self.published}
        ready = [
            override_of(key, number, after_turn=due)
            for number, due in enumerate(self.due)
            if due <= round_
            for key in self.corrected
            if key in stored
        ]
        fresh = [o for o in ready if o["event_id"] not in done]
        earlier = list({o["event_id"]: o for o in self.published}.values())  # in first order
        again = [o for o in earlier[: self.redelivered] if o["event_id"] not in self._copied]
        self._copied.update(o["event_id"] for o in again)
        batch = fresh + again
        self.published += batch
        return batch

    @property
    def unpublished(self) -> list[JsonObject]:
        done = {o["event_id"] for o in self.published}
        return [o for o in self.overrides if o["event_id"] not in done]


async def conversations_with_state(database_url: str) -> set[ConversationKey]:
    rows = await fetch(
        database_url, "SELECT tenant_id, account_id, contact_id FROM tenant.conversation_states"
    )
    return {ConversationKey(r["tenant_id"], r["account_id"], r["contact_id"]) for r in rows}


# --- the fake LLM ------------------------------------------------------------------------------

_TURN = re.compile(r'<turn [^>]*speaker="(?P<speaker>\w+)"[^>]*>\n(?P<text>.*?)\n</turn>', re.S)


def prompt_text(request: Mapping[str, Any]) -> str:
    return "\n".join(str(m.get("content") or "") for m in request.get("messages", []))


def prompt_turns(request: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(speaker, text) of every turn inside the prompt's <turns> block."""
    return [(m.group("speaker"), m.group("text")) for m in _TURN.finditer(prompt_text(request))]


def quoting_extraction(request: JsonObject) -> JsonObject:
    """A need, evidenced by the first sentence of every prospect turn in the prompt."""
    quotes = [
        first_sentence(text) for speaker, text in prompt_turns(request) if speaker == "prospect"
    ]
    if not quotes:
        return EMPTY_EXTRACTION
    need = {
        "need_identified": True,
        "need_confidence": 0.6,
        "need_evidence": quotes,
        "need_description": quotes[-1][:150],
    }
    return {**EMPTY_EXTRACTION, "bant": need, "overall_confidence": 0.3}


@dataclass(kw_only=True)
class QuotingLLM(FakeLLMServer):
    """The fake server with `in_flight` (requests received, not yet answered)."""

    in_flight: int = 0
    by_mode: Counter[str] = field(default_factory=Counter)  # requests met by each mode
    abandoned: int = 0  # requests whose client hung up before the answer (a killed worker)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reply_builder is None:
            self.reply_builder = quoting_extraction

    @property
    def mode_name(self) -> str:
        return "-".join(str(v) for v in self.mode.values())  # "ok", "hang", "error-500"

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.by_mode[self.mode_name] += 1
        self.in_flight += 1
        try:
            response = await super()._chat(request)
        finally:
            self.in_flight -= 1
        if request.transport is None or request.transport.is_closing():
            self.abandoned += 1
        return response

    def fail_with(self, status: int) -> None:
        self.mode = {"mode": "error", "status": status}

    def hang(self) -> None:
        self.mode = {"mode": "hang"}

    def recover(self) -> None:
        self.mode = {"mode": "ok"}

    async def call_in_flight(self, *, since: int, within_s: float = 60) -> None:
        """Until a request received after the `since`-th one is being answered."""

        async def new_call_in_flight() -> bool:
            return self.received > since and self.in_flight > 0

        await eventually(
            new_call_in_flight, bool, within_s=within_s, interval=0.002, what="an LLM call"
        )


# --- workers -----------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Workers:
    """Starts `python -m worker run` processes; each start gets its own log file."""

    log_dir: Path
    database_url: str
    bootstrap_servers: str
    topics: Topics
    llm_base_url: str
    env: dict[str, str] = field(default_factory=dict)
    started: list[WorkerProcess] = field(default_factory=list)

    @property
    def group(self) -> str:
        return f"group-{self.topics.turns}"

    def start(self, *args: str, **extra_env: str) -> WorkerProcess:
        """`python -m worker run *args` with the suite's environment and `extra_env`."""
        env = worker_env(
            database_url=self.database_url,
            bootstrap_servers=self.bootstrap_servers,
            topics=self.topics,
            llm_base_url=self.llm_base_url,
            **{**self.env, **extra_env},
        )
        process = WorkerProcess(
            env=env, log_path=self.log_dir / f"worker-{len(self.started)}.log", args=args
        )
        self.started.append(process.start())
        return process

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.started if w.alive]

    def stop_all(self) -> None:
        for process in self.started:
            if process.alive:
                process.stop(within_s=20)

    def log_lines(self) -> Iterator[JsonObject]:
        """Every JSON log line of every worker started so far (other lines skipped)."""
        for process in self.started:
            for line in process.log_text().splitlines():
                if line.startswith("{"):
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue

    def events(self, name: str) -> list[JsonObject]:
        return [line for line in self.log_lines() if line.get("event") == name]

    def all_logs(self) -> str:
        return "\n".join(process.log_text() for process in self.started)

    def committed_batches(self, process: WorkerProcess) -> int:
        return process.log_text().count('"event": "batch_committed"')

    def secrets_in_logs(self, payloads: Sequence[Mapping[str, Any]], *extra: str) -> list[str]:
        """Turn texts, emails, contact names and `extra` strings (API keys) found in any worker's
        log: each one is a leak. Short texts are skipped (they match by accident)."""
        logs = self.all_logs()
        secrets = set(extra)
        for payload in payloads:
            for name in ("text", "contact_email", "contact_name"):
                value = payload.get(name)
                if isinstance(value, str) and len(value.strip()) >= 12:
                    secrets.add(value)
            email = payload.get("contact_email")
            if isinstance(email, str) and "@" in email:
                secrets.add(email)
        return sorted(s for s in secrets if s in logs)


async def stop_worker(
    worker: WorkerProcess, sig: int = signal.SIGTERM, *, within_s: float = 30
) -> int:
    """Signal the worker and await its exit code without blocking the event loop (the fake
    LLM is served from it: a blocking wait would freeze the worker's in-flight calls)."""
    process = worker.process
    assert process is not None
    if process.poll() is None:
        process.send_signal(sig)

    async def exit_code() -> int | None:
        return process.poll()

    code = await eventually(
        exit_code, lambda c: c is not None, within_s=within_s, what="the worker to exit"
    )
    assert code is not None
    return code


async def assigned_partitions(http_port: int) -> int:
    """How many partitions the worker serving /ready on `http_port` owns (0 while it starts,
    joins the group or owns none)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(f"http://127.0.0.1:{http_port}/ready") as response,
        ):
            report = await response.json()
    except (aiohttp.ClientError, TimeoutError):
        return 0
    return int(report.get("consumer", {}).get("partitions", 0))


# --- watching the database ---------------------------------------------------------------------


@dataclass(kw_only=True)
class DatabaseProbe:
    """A connection of the test's own, polled while workers run."""

    conn: asyncpg.Connection

    @classmethod
    async def open(cls, database_url: str) -> DatabaseProbe:
        return cls(conn=await asyncpg.connect(database_url))

    async def close(self) -> None:
        await self.conn.close()

    async def value(self, query: str, *args: Any) -> Any:
        return await self.conn.fetchval(query, *args)

    async def applied(self) -> int:
        sql = "SELECT coalesce(sum(interaction_count), 0) FROM tenant.conversation_states"
        return int(await self.value(sql))

    async def stored_turns(self) -> int:
        return int(await self.value("SELECT count(*) FROM tenant.conversation_turns"))

    async def applied_overrides(self) -> int:
        return int(await self.value("SELECT count(*) FROM tenant.overrides"))

    async def deferred(self) -> int:
        """Turns waiting for a debounced extraction."""
        return int(await self.value("SELECT count(*) FROM tenant.deferred_turns"))

    async def pending(self) -> int:
        sql = "SELECT count(*) FROM tenant.conversation_turns WHERE extracted_at IS NULL"
        return int(await self.value(sql))

    async def versions(self) -> int:
        """Committed state versions (one outbox row each)."""
        return int(await self.value("SELECT count(*) FROM tenant.outbox"))

    async def unpublished(self) -> int:
        sql = "SELECT count(*) FROM tenant.outbox WHERE published_at IS NULL"
        return int(await self.value(sql))

    async def sleeping_writers(self, *, since: Any = None) -> int:
        """Backends (connected after `since`) paused inside a write transaction by
        `widen_write_transaction`."""
        return len(await self.paused_transactions(WRITE_STATEMENT, since=since))

    async def paused_transactions(self, statement: str, *, since: Any = None) -> list[str]:
        """The transaction ids (xid8, as text) of backends connected after `since` that a pause
        trigger holds inside a statement containing `statement`."""
        sql = (
            "SELECT ((pg_snapshot_xmax(pg_current_snapshot())::text::bigint >> 32 << 32)"
            "        | backend_xid::text::bigint)::text"  # the 32-bit xid with its epoch
            " FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event = 'PgSleep' AND pid <> pg_backend_pid()"
            " AND backend_xid IS NOT NULL AND strpos(query, $2) > 0"
            " AND ($1::timestamptz IS NULL OR backend_start >= $1::timestamptz)"
        )
        return [row[0] for row in await self.conn.fetch(sql, since, statement)]

    async def aborted_once_ended(self, xids: Sequence[str], *, within_s: float = 30) -> int:
        """How many of the transactions `xids` rolled back, once none is in progress any more
        (a killed client's backend notices when its paused statement ends)."""
        sql = "SELECT pg_xact_status(x::xid8) FROM unnest($1::text[]) AS x"

        async def statuses() -> list[str]:
            return [row[0] for row in await self.conn.fetch(sql, list(xids))]

        ended = await eventually(
            statuses,
            lambda found: "in progress" not in found,
            within_s=within_s,
            what="the paused transactions to end",
        )
        return ended.count("aborted")


# What pg_stat_activity shows of the statements the pause triggers hold: the write
# transaction's outbox insert, the relay's mark of the rows it published, and (debounced
# extraction) the release of deferred turns after their version.
WRITE_STATEMENT = "INSERT INTO tenant.outbox"
MARK_STATEMENT = "UPDATE tenant.outbox SET published_at"
RELEASE_STATEMENT = "DELETE FROM tenant.deferred_turns"


async def widen_write_transaction(database_url: str, seconds: float) -> None:
    """Make every write transaction pause `seconds` at its outbox insert (its last write,
    after turns and state are written and before COMMIT), so a kill can be aimed inside it.

    A real trigger in the test's own database: the worker and PostgreSQL run unmodified.
    """
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            f"""
            CREATE FUNCTION tenant.reliability_pause() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep({seconds:.3f}); RETURN NEW; END $$;
            CREATE TRIGGER reliability_pause BEFORE INSERT ON tenant.outbox
            FOR EACH ROW EXECUTE FUNCTION tenant.reliability_pause();
            """
        )
    finally:
        await conn.close()


# --- aimed kills -------------------------------------------------------------------------------

KILL_MOMENTS = (
    "extraction",
    "write_transaction",
    "after_state_commit",
    "between_publish_and_mark",
    "before_release",
    "random",
)


@dataclass(frozen=True)
class Landing:
    """Where a kill was aimed and what was observed of that moment right after it: `proof` is
    empty when the moment's mark was not seen (the kill landed elsewhere)."""

    moment: str
    proof: str


Witness = Callable[[], Awaitable[str]]


@dataclass(kw_only=True)
class Killer:
    """SIGKILLs a worker at a chosen moment and records, from outside the worker, the proof
    that each kill landed where it was aimed:

    - `extraction`: the fake LLM saw a request of the worker abandoned mid-call;
    - `write_transaction`: a write transaction seen paused before its COMMIT rolled back;
    - `after_state_commit`: turns are stored whose records the group has not committed past
      (`stored_above_committed`, given by the test: it knows the records sent);
    - `between_publish_and_mark`: the relay's mark of rows it had published rolled back, so
      they are published again (a pause trigger on the mark is set for this kill only);
    - `before_release` (debounced extraction): the deletion of deferred turns whose version
      committed rolled back, so the next claimant finds them stored (a pause trigger on that
      deletion is set for this kill only);
    - `random`: the worker had sent the randomly chosen number of LLM requests.

    Call `started()` right before starting the worker a kill is meant for: requests and
    database sessions from before (a killed predecessor's) then never count as its own.
    Before aiming, the worker is let commit a seeded random number of versions, so kills
    spread over the run instead of always hitting the first batch after a restart.
    """

    llm: QuotingLLM
    probe: DatabaseProbe
    rng: random.Random
    stored_above_committed: Callable[[], Awaitable[int]]
    max_warm_up_versions: int = 60
    mark_pause_s: float = 0.2
    landings: list[Landing] = field(default_factory=list)
    _since: Any = None
    _received_at_start: int = 0

    async def started(self) -> None:
        self._since = await self.probe.value("SELECT clock_timestamp()")
        self._received_at_start = self.llm.received

    async def kill_during(self, moment: str, worker: WorkerProcess, within_s: float = 60) -> None:
        assert moment in KILL_MOMENTS, moment
        await self._warm_up(within_s)
        await self.kill_when(moment, self.aim(moment, within_s), worker)

    def aim(self, moment: str, within_s: float = 60) -> asyncio.Task[Witness]:
        """Start aiming at `moment` now, before the work the kill is meant for is produced:
        with debounced extraction a whole round is extracted at once, and aiming after it was
        produced (as `kill_during` does) can find the round's calls and writes already over."""
        assert moment in KILL_MOMENTS, moment
        aiming: Callable[[float], Awaitable[Witness]] = getattr(self, f"_aim_{moment}")
        return asyncio.ensure_future(aiming(within_s))

    async def kill_when(
        self, moment: str, aimed: Awaitable[Witness], worker: WorkerProcess
    ) -> None:
        """SIGKILL `worker` once `aimed` (from `aim`) found the moment; record the proof."""
        witness = await aimed
        code = await stop_worker(worker, signal.SIGKILL, within_s=10)
        assert code == -signal.SIGKILL, f"the worker exited with {code} before the kill"
        self.landings.append(Landing(moment, await witness()))

    def missed(self) -> list[str]:
        """The moments whose kill left no proof of landing there."""
        return [landing.moment for landing in self.landings if not landing.proof]

    async def _warm_up(self, within_s: float) -> None:
        target = await self.probe.versions() + self.rng.randint(0, self.max_warm_up_versions)
        await eventually(
            self.probe.versions, lambda n: n >= target, within_s=within_s, what="warm-up versions"
        )

    async def _aim_extraction(self, within_s: float) -> Witness:
        # The fake holds every reply (its gate) from now until the kill has landed: a request
        # seen arriving is still in flight then, however slow the machine, so the kill
        # interrupts an extraction of this very worker.
        since = max(self.llm.received, self._received_at_start)
        abandoned_before = self.llm.abandoned
        self.llm.gate = asyncio.Event()
        await self.llm.call_in_flight(since=since, within_s=within_s)

        async def abandoned_mid_call() -> str:
            async def abandoned() -> int:
                return self.llm.abandoned

            assert self.llm.gate is not None
            self.llm.gate.set()  # the held replies go out to a worker that is gone
            self.llm.gate = None
            try:  # the fake sees the hang-up only when it answers
                await eventually(abandoned, lambda n: n > abandoned_before, within_s=10)
            except AssertionError:
                return ""
            return f"{self.llm.abandoned - abandoned_before} LLM request(s) abandoned mid-call"

        return abandoned_mid_call

    async def _aim_write_transaction(self, within_s: float) -> Witness:
        async def writers() -> list[str]:
            return await self.probe.paused_transactions(WRITE_STATEMENT, since=self._since)

        paused = await eventually(
            writers,
            bool,
            within_s=within_s,
            interval=0.002,
            what="a worker inside its write transaction",
        )
        return self._rolled_back(paused, WRITE_STATEMENT, "write transaction(s)")

    async def _aim_after_state_commit(self, within_s: float) -> Witness:
        # A batch commits its offsets only after all its conversations are stored: right after
        # one more version commits, the batch it belongs to is (almost always) still running.
        before = await self.probe.versions()
        await eventually(
            self.probe.versions,
            lambda n: n > before,
            within_s=within_s,
            interval=0.002,
            what="a state commit",
        )

        async def stored_not_committed() -> str:
            count = await self.stored_above_committed()
            return f"{count} stored turn(s) not committed past" if count else ""

        return stored_not_committed

    async def _aim_between_publish_and_mark(self, within_s: float) -> Witness:
        return await self._aim_paused_statement(
            "UPDATE ON tenant.outbox", MARK_STATEMENT, "mark(s) of published rows", within_s
        )

    async def _aim_before_release(self, within_s: float) -> Witness:
        return await self._aim_paused_statement(
            "DELETE ON tenant.deferred_turns",
            RELEASE_STATEMENT,
            "release(s) of extracted deferred turns",
            within_s,
        )

    async def _aim_paused_statement(
        self, event_on_table: str, statement: str, what: str, within_s: float
    ) -> Witness:
        """A pause trigger on `event_on_table` for this kill only; the kill lands while a
        worker's `statement` is seen paused, and the proof is its rollback."""
        table = event_on_table.split(" ON ")[1]
        await self.probe.conn.execute(
            f"""
            CREATE FUNCTION tenant.reliability_kill_pause() RETURNS trigger LANGUAGE plpgsql
            AS $$ BEGIN PERFORM pg_sleep({self.mark_pause_s:.3f}); RETURN NULL; END $$;
            CREATE TRIGGER reliability_kill_pause BEFORE {event_on_table}
            FOR EACH STATEMENT EXECUTE FUNCTION tenant.reliability_kill_pause();
            """
        )

        async def paused_now() -> list[str]:
            return await self.probe.paused_transactions(statement, since=self._since)

        paused = await eventually(
            paused_now, bool, within_s=within_s, interval=0.002, what=f"a paused {statement}"
        )
        rolled_back = self._rolled_back(paused, statement, what)

        async def without_the_pause() -> str:
            # Dropped only after the kill: the DROP waits for the paused statement to end, and
            # before the kill it would end in a COMMIT. The next worker goes on at once.
            await self.probe.conn.execute(
                f"DROP TRIGGER reliability_kill_pause ON {table};"
                " DROP FUNCTION tenant.reliability_kill_pause();"
            )
            return await rolled_back()

        return without_the_pause

    async def _aim_random(self, within_s: float) -> Witness:
        target = self.llm.received + self.rng.randint(1, 30)

        async def received() -> int:
            return self.llm.received

        await eventually(
            received, lambda n: n >= target, within_s=within_s, interval=0.002, what="LLM calls"
        )

        async def requests_sent() -> str:
            return f"killed after LLM request {target}" if self.llm.received >= target else ""

        return requests_sent

    def _rolled_back(self, paused: list[str], statement: str, what: str) -> Witness:
        """Proof for a kill aimed at a paused transaction: one seen paused (before the kill, or
        still paused right after it, so certainly cut by it) ended in a rollback."""

        async def rolled_back() -> str:
            still = await self.probe.paused_transactions(statement, since=self._since)
            aborted = await self.probe.aborted_once_ended(sorted({*paused, *still}))
            return f"rolled back: {aborted} paused {what}" if aborted else ""

        return rolled_back


# --- Kafka helpers -----------------------------------------------------------------------------


async def committed_offsets(bootstrap_servers: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition (0 where nothing is committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        return {
            p: (await consumer.committed(TopicPartition(topic, p)) or 0) for p in sorted(partitions)
        }
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Sent:
    """Where a produced record landed."""

    payload: JsonObject
    partition: int
    offset: int


async def produce_tracked(
    bootstrap_servers: str, topic: str, payloads: Sequence[JsonObject]
) -> list[Sent]:
    """Publish payloads keyed by conversation; returns each one's partition and offset."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=json.dumps(p).encode(), key=key_of(p))
            for p in payloads
        ]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [Sent(p, m.partition, m.offset) for p, m in zip(payloads, metadata, strict=True)]


StoredIn = Literal["tenant.conversation_turns", "tenant.overrides", "tenant.deferred_turns"]


async def unstored_below_committed(
    database_url: str,
    bootstrap_servers: str,
    group: str,
    topic: str,
    sent: Sequence[Sent],
    *,
    stored_in: Sequence[StoredIn] = ("tenant.conversation_turns",),
) -> list[Sent]:
    """Records the group has committed past although their turn (or, with `stored_in`
    tenant.overrides, their override; with tenant.deferred_turns too, a turn waiting for its
    debounced extraction) is not stored: each one is lost for good. Must be empty at every
    moment, whatever happened to the workers."""
    committed = await committed_offsets(bootstrap_servers, group, topic)
    union = " UNION ALL ".join(f"SELECT event_id FROM {table}" for table in stored_in)
    stored = {str(row["event_id"]) for row in await fetch(database_url, union)}
    return [
        s
        for s in sent
        if s.offset < committed.get(s.partition, 0) and s.payload["event_id"] not in stored
    ]


async def stored_above_committed(
    database_url: str, bootstrap_servers: str, group: str, topic: str, sent: Sequence[Sent]
) -> list[Sent]:
    """Records whose turn is stored although the group has not committed past them: a kill
    between a state commit and its batch's offset commit leaves some, and their redelivery
    must be recognised as duplicates."""
    committed = await committed_offsets(bootstrap_servers, group, topic)
    stored = {
        str(row["event_id"])
        for row in await fetch(database_url, "SELECT event_id FROM tenant.conversation_turns")
    }
    return [
        s
        for s in sent
        if s.offset >= committed.get(s.partition, 0) and s.payload["event_id"] in stored
    ]


async def partial_state_problems(database_url: str) -> list[str]:
    """Consistency of what is stored, at any moment (workers stopped or killed or not):
    every conversation's counter matches its stored turns, its outbox holds versions 1..N
    exactly, and those versions name each stored turn exactly once; every applied override
    names a version whose event says `source: override` with the override's actor, and every
    such event belongs to exactly one applied override. A write cut in half (turns without
    their version, a version without its event, an override without its version) shows up
    here."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """
            SELECT s.tenant_id, s.account_id, s.contact_id, s.interaction_count, s.version,
                   (SELECT array_agg(t.event_id::text) FROM tenant.conversation_turns t
                     WHERE t.tenant_id = s.tenant_id AND t.account_id = s.account_id
                       AND t.contact_id = s.contact_id) AS turns
            FROM tenant.conversation_states s
            """
        )
        # Update events only: dead letters of deferred turns ride the outbox too.
        outbox = await conn.fetch("SELECT payload FROM tenant.outbox WHERE payload ? 'version'")
        override_rows = await conn.fetch(
            "SELECT event_id, tenant_id, account_id, contact_id, actor, version"
            " FROM tenant.overrides"
        )
    finally:
        await conn.close()
    versions: dict[ConversationKey, list[JsonObject]] = defaultdict(list)
    for row in outbox:
        payload = _as_json(row["payload"])
        versions[conversation_of(payload)].append(payload)
    applied_overrides: dict[ConversationKey, list[asyncpg.Record]] = defaultdict(list)
    for row in override_rows:
        key = ConversationKey(row["tenant_id"], row["account_id"], row["contact_id"])
        applied_overrides[key].append(row)
    problems = []
    for row in rows:
        key = ConversationKey(row["tenant_id"], row["account_id"], row["contact_id"])
        turns = set(row["turns"] or [])
        events = versions.pop(key, [])
        named = Counter(t for e in events for t in e["turn_event_ids"])
        if row["interaction_count"] != len(turns):
            problems.append(f"{key}: count {row['interaction_count']} but {len(turns)} turns")
        if sorted(e["version"] for e in events) != list(range(1, row["version"] + 1)):
            problems.append(f"{key}: version {row['version']} but events {len(events)}")
        if set(named) != turns or any(c != 1 for c in named.values()):
            problems.append(f"{key}: the versions do not name each stored turn exactly once")
        problems += _applied_override_problems(key, applied_overrides.pop(key, []), events)
    problems += [f"{key}: events without a state" for key in versions]
    problems += [f"{key}: overrides without a state" for key in applied_overrides]
    return problems


def _applied_override_problems(
    key: ConversationKey, applied: Sequence[asyncpg.Record], events: Sequence[JsonObject]
) -> list[str]:
    """Each applied override (a tenant.overrides row) against the outbox events of its
    conversation: its version's event is an override event by its actor, and there are as
    many override events as applied overrides."""
    by_version = {event["version"]: event for event in events}
    problems = []
    for row in applied:
        event = by_version.get(row["version"])
        if event is None:
            problems.append(
                f"{key}: override {row['event_id']} names v{row['version']}, which has no event"
            )
        elif event.get("source") != "override" or event.get("actor") != _as_json(row["actor"]):
            problems.append(
                f"{key}: override {row['event_id']} names v{row['version']}, whose event has"
                f" source {event.get('source')!r} and actor {event.get('actor')}"
            )
    override_events = sum(1 for event in events if event.get("source") == "override")
    if override_events != len(applied):
        problems.append(
            f"{key}: {override_events} override version(s) for {len(applied)} applied override(s)"
        )
    return problems


# --- the end state -----------------------------------------------------------------------------


def distinct_updates(reader: TopicReader) -> dict[uuid.UUID, list[JsonObject]]:
    """Every copy of every `qualification.updated` event seen, by event_id."""
    seen: dict[uuid.UUID, list[JsonObject]] = defaultdict(list)
    for _key, value, _headers in reader.records:
        payload = json.loads(value)
        seen[uuid.UUID(payload["event_id"])].append(payload)
    return seen


async def settle(
    probe: DatabaseProbe,
    updates: TopicReader,
    *,
    expected_turns: int,
    within_s: float = 120,
    all_extracted: bool = True,
    expected_overrides: int = 0,
) -> None:
    """Wait until every turn (and override) is applied, (optionally) extracted, and every
    version published and read back."""
    await eventually(probe.applied, lambda n: n >= expected_turns, within_s=within_s, what="turns")
    await eventually(
        probe.applied_overrides,
        lambda n: n >= expected_overrides,
        within_s=within_s,
        what="overrides",
    )
    if all_extracted:
        await eventually(probe.pending, lambda n: n == 0, within_s=within_s, what="no pending")
    await eventually(probe.unpublished, lambda n: n == 0, within_s=within_s, what="outbox drained")
    versions = await probe.versions()

    async def distinct_seen() -> int:
        return len(distinct_updates(updates))

    await eventually(
        distinct_seen, lambda n: n >= versions, within_s=within_s, what="every version read back"
    )


async def verify_end_state(
    database_url: str,
    workload_turns: Sequence[Mapping[str, Any]],
    updates: TopicReader,
    *,
    expected_quotes: Mapping[ConversationKey, set[str]] | None = None,
    overrides: Sequence[Mapping[str, Any]] = (),
) -> list[str]:
    """Every promise, checked; returns the violations (an empty list when all hold).

    - each conversation's `interaction_count` equals the distinct turns sent to it, and its
      stored turns are exactly those;
    - no evidence quote is stored twice; with `expected_quotes`, the evidence is exactly them
      (every prospect turn extracted, none lost);
    - versions run 1..N without gap in the outbox; the distinct `event_id`s read back from
      `qualification.updated` are exactly one per version (N per conversation, deterministic
      ids), every copy of one event carries the same payload, and every turn appears in the
      `turn_event_ids` of exactly one version;
    - each of `overrides` (copies counted once) is applied exactly once: one tenant.overrides
      row, in its conversation, naming a version whose event has `source: override`, the
      override's actor, no turns, and shows what the override did (values set, dimensions
      owned by the actor, the stage); each conversation has exactly as many override versions
      as overrides sent to it.
    """
    expected: dict[ConversationKey, set[str]] = defaultdict(set)
    for payload in workload_turns:
        expected[conversation_of(payload)].add(str(payload["event_id"]))
    conn = await asyncpg.connect(database_url)
    try:
        states = await conn.fetch("SELECT * FROM tenant.conversation_states")
        turn_rows = await conn.fetch(
            "SELECT event_id, tenant_id, account_id, contact_id FROM tenant.conversation_turns"
        )
        outbox = await conn.fetch(
            "SELECT event_id, payload FROM tenant.outbox WHERE payload ? 'version' ORDER BY id"
        )
        override_rows = await conn.fetch(
            "SELECT event_id, tenant_id, account_id, contact_id, version FROM tenant.overrides"
        )
    finally:
        await conn.close()

    problems: list[str] = []
    by_key = {ConversationKey(r["tenant_id"], r["account_id"], r["contact_id"]): r for r in states}
    stored: dict[ConversationKey, set[str]] = defaultdict(set)
    for row in turn_rows:
        key = ConversationKey(row["tenant_id"], row["account_id"], row["contact_id"])
        stored[key].add(str(row["event_id"]))
    outbox_versions: dict[ConversationKey, list[int]] = defaultdict(list)
    for row in outbox:
        payload = _as_json(row["payload"])
        key = ConversationKey(
            uuid.UUID(payload["tenant_id"]), payload["account_id"], payload["contact_id"]
        )
        outbox_versions[key].append(payload["version"])
    seen = distinct_updates(updates)
    events_of: dict[ConversationKey, dict[int, JsonObject]] = defaultdict(dict)
    for event_id, copies in seen.items():
        first = copies[0]
        if any(copy != first for copy in copies[1:]):
            problems.append(f"event {event_id} was published with different payloads")
        key = ConversationKey(
            uuid.UUID(first["tenant_id"]), first["account_id"], first["contact_id"]
        )
        if event_id != update_event_id(key, first["version"]):
            problems.append(
                f"event {event_id} is not the deterministic id of {key} v{first['version']}"
            )
        events_of[key][first["version"]] = first

    for key in sorted(set(expected) | set(by_key), key=str):
        problems += _conversation_problems(
            key,
            by_key.get(key),
            expected.get(key, set()),
            stored.get(key, set()),
            outbox_versions.get(key, []),
            events_of.get(key, {}),
            None if expected_quotes is None else expected_quotes.get(key, set()),
        )
    problems += _sent_override_problems(overrides, override_rows, events_of)
    return problems


def _sent_override_problems(
    overrides: Sequence[Mapping[str, Any]],
    rows: Sequence[asyncpg.Record],
    events_of: Mapping[ConversationKey, Mapping[int, JsonObject]],
) -> list[str]:
    sent = {str(o["event_id"]): o for o in overrides}
    rows_of: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        rows_of[str(row["event_id"])].append(row)
    problems = [f"override {event_id} applied but never sent" for event_id in rows_of.keys() - sent]
    for event_id, override in sent.items():
        key = conversation_of(override)
        found = rows_of.get(event_id, [])
        if len(found) != 1:
            problems.append(f"{key}: override {event_id} applied {len(found)} times")
            continue
        (row,) = found
        if ConversationKey(row["tenant_id"], row["account_id"], row["contact_id"]) != key:
            problems.append(f"{key}: override {event_id} applied to another conversation")
            continue
        event = events_of.get(key, {}).get(row["version"])
        if event is None:
            problems.append(f"{key}: override {event_id} names v{row['version']}, never read back")
            continue
        problems += [
            f"{key}: override {event_id}: {p}" for p in _override_event_problems(override, event)
        ]
    sent_to = Counter(conversation_of(o) for o in sent.values())
    for key, events in events_of.items():
        versions = sum(1 for event in events.values() if event.get("source") == "override")
        if versions != sent_to.get(key, 0):
            problems.append(
                f"{key}: {versions} override version(s) for {sent_to.get(key, 0)} override(s) sent"
            )
    return problems


def _override_event_problems(override: Mapping[str, Any], event: JsonObject) -> list[str]:
    """What the event of the version an override made must show of it."""
    problems = []
    if event.get("source") != "override":
        problems.append(f"its v{event['version']} has source {event.get('source')!r}")
    if event.get("actor") != override["actor"]:
        problems.append(f"its v{event['version']} has actor {event.get('actor')}")
    if event["turn_event_ids"]:
        problems.append(f"its v{event['version']} names turns")
    owners = event.get("owners") or {}
    for name, values in (override.get("set") or {}).items():
        group = DIMENSIONS.spec(name).group.value
        shown = event["qualification"][group]
        for field_name, value in values.items():
            if field_name in DIMENSION_FIELDS[Dimension(name)] and shown.get(field_name) != value:
                problems.append(f"{field_name} is {shown.get(field_name)!r}, set {value!r}")
    for name in [*(override.get("set") or {}), *(override.get("lock") or [])]:
        if (owners.get(name) or {}).get("actor") != override["actor"]:
            problems.append(f"{name} is owned by {owners.get(name)}")
    for name in override.get("unlock") or []:
        if name in owners:
            problems.append(f"{name} is still owned")
    stage = override.get("stage")
    if stage is not None and event["deal_stage"] != stage["to"]:
        problems.append(f"the deal is in {event['deal_stage']}, moved to {stage['to']}")
    return problems


def _conversation_problems(
    key: ConversationKey,
    state: asyncpg.Record | None,
    sent: set[str],
    stored: set[str],
    outbox_versions: list[int],
    events: dict[int, JsonObject],
    quotes: set[str] | None,
) -> list[str]:
    if state is None:
        return [f"{key}: no state for {len(sent)} turns sent"]
    problems: list[str] = []
    n = state["version"]
    if state["interaction_count"] != len(sent):
        problems.append(
            f"{key}: interaction_count {state['interaction_count']} != {len(sent)} sent"
        )
    if stored != sent:
        problems.append(
            f"{key}: stored turns differ: {len(sent - stored)} missing,"
            f" {len(stored - sent)} unknown"
        )
    if sorted(outbox_versions) != list(range(1, n + 1)):
        problems.append(f"{key}: outbox versions {sorted(outbox_versions)} != 1..{n}")
    if set(events) != set(range(1, n + 1)):
        missing = sorted(set(range(1, n + 1)) - set(events))
        extra = sorted(set(events) - set(range(1, n + 1)))
        problems.append(f"{key}: update events missing versions {missing}, unexpected {extra}")
    applied = Counter(t for event in events.values() for t in event["turn_event_ids"])
    if set(applied) != sent or any(count != 1 for count in applied.values()):
        twice = sorted(t for t, c in applied.items() if c > 1)
        problems.append(
            f"{key}: turns in events: {len(sent - set(applied))} never applied, "
            f"{len(twice)} applied in more than one version"
        )
    if n in events and events[n]["interaction_count"] != state["interaction_count"]:
        problems.append(f"{key}: the last event's interaction_count differs from the state")
    problems += _evidence_problems(key, _as_json(state["qualification_data"]), quotes)
    return problems


def _evidence_problems(
    key: ConversationKey, qualification: JsonObject, quotes: set[str] | None
) -> list[str]:
    problems = []
    for section in ("bant", "meddic"):
        for name, value in (qualification.get(section) or {}).items():
            if name.endswith("_evidence") and len(value) != len(set(value)):
                problems.append(f"{key}: duplicated quotes in {section}.{name}")
    if quotes is not None:
        evidence = set((qualification.get("bant") or {}).get("need_evidence", []))
        if evidence != quotes:
            problems.append(
                f"{key}: need_evidence has {len(quotes - evidence)} quotes missing and "
                f"{len(evidence - quotes)} unexpected"
            )
    return problems


def _as_json(value: Any) -> JsonObject:
    return json.loads(value) if isinstance(value, str) else dict(value)


def describe_problems(problems: Sequence[str], limit: int = 25) -> str:
    shown = "\n".join(problems[:limit])
    more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{len(problems)} violation(s):\n{shown}{more}"
