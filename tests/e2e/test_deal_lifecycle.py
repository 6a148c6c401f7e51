"""The deal lifecycle end to end through `python -m worker run` (CONTRACT.md section 4): a stall
that cannot be used to skip ahead, a loss from discovery, exit criteria, inactivity stalls
with the resume on the next turn, and a whole call's stage walk in one version. The model is
scripted over HTTP by what the new turns say; every `qualification.updated` read carries the gap
report its state implies."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import QualificationUpdated
from tests.fakes.llm_server import EMPTY_EXTRACTION, FakeLLMServer
from tests.gap_reports import assert_next_stages_consistent
from tests.harness import TopicReader, Topics, WorkerProcess, fetch, produce, turn
from tests.waiting import eventually

StartWorker = Callable[..., WorkerProcess]

_TURN_TEXT = re.compile(r"<turn index=[^>]*>\n(?P<text>.*?)\n</turn>", re.S)


def dimension(name: str, quote: str, **values: Any) -> dict[str, Any]:
    return {
        f"{name}_identified": True,
        f"{name}_confidence": 0.9,
        f"{name}_evidence": [quote],
        **values,
    }


def scripted_model(request: dict[str, Any]) -> dict[str, Any]:
    """What the model says about the NEW turns (the <turn> blocks; the known state is not
    read): a keyword in a turn picks the stage it proposes and the dimensions it finds, with the
    turn itself as the verbatim evidence."""
    prompt = "\n".join(str(m.get("content") or "") for m in request.get("messages", []))
    texts = [m.group("text") for m in _TURN_TEXT.finditer(prompt)]
    said = " ".join(texts)
    quote = texts[-1] if texts else ""
    bant: dict[str, Any] = {}
    meddic: dict[str, Any] = {}
    stage, reason = None, None
    if "HELLO" in said:
        stage, reason = "discovery", "the prospect is exploring"
    if "PAUSE" in said:
        stage, reason = "stalled", "the prospect asked to pause"
    if "LEAP" in said:
        stage, reason = "negotiation", "the prospect wants a contract"
    if "COMPETITOR" in said:
        stage, reason = "closed_lost", "we went with a competitor"
    if "PAINS" in said:
        bant |= dimension("need", quote, need_description="faster onboarding")
        meddic |= dimension("identify_pain", quote, pain_description="slow onboarding")
        stage, reason = "qualification", "need and pain are clear"
    if "AUTHORITY" in said:
        bant |= dimension("authority", quote, authority_role="VP Operations")
        bant |= dimension("timeline", quote, timeline_description="this quarter")
        stage, reason = "evaluation", "a decision maker and a date"
    if "BUDGET" in said:
        bant |= dimension("budget", quote, budget_range="$80k")
        stage, reason = "evaluation", "the budget is set"
    return {
        **EMPTY_EXTRACTION,
        "bant": bant,
        "meddic": meddic,
        # A walk of one step, quoted with the turn (closing as lost needs the prospect's words).
        "stage_walk": [{"stage": stage, "reason": reason, "quote": quote}] if stage else [],
    }


class Conversation:
    """One conversation driven turn by turn: each turn is produced once the previous one's
    version is stored (one batch each), and its version awaited."""

    def __init__(self, bootstrap_servers: str, topics: Topics, database_url: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.database_url = database_url
        self.tenant = uuid.uuid4()
        self.sequence = 0

    async def say(self, text: str, **overrides: Any) -> dict[str, Any]:
        payload = turn(self.tenant, "acme", "jane", self.sequence, text, **overrides)
        await produce(self.bootstrap_servers, self.topics.turns, [payload])
        self.sequence += 1
        return await self.wait_for(lambda state: state["interaction_count"] == self.sequence)

    async def wait_for(self, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async def state() -> dict[str, Any]:
            rows = await fetch(
                self.database_url,
                "SELECT deal_stage, stalled_from, version, interaction_count"
                " FROM tenant.conversation_states WHERE tenant_id = $1",
                self.tenant,
            )
            return dict(rows[0]) if rows else {"interaction_count": 0, "version": 0}

        return await eventually(state, condition, what="the conversation's next state")

    async def transitions(self) -> list[tuple[Any, ...]]:
        rows = await fetch(
            self.database_url,
            "SELECT version, from_stage, to_stage, accepted, reason, source"
            " FROM tenant.stage_transitions WHERE tenant_id = $1 ORDER BY id",
            self.tenant,
        )
        return [tuple(row) for row in rows]


async def published(updates: TopicReader, versions: int) -> list[QualificationUpdated]:
    await eventually(updates.count, lambda n: n >= versions, what=f"{versions} update events")
    events = [QualificationUpdated.model_validate_json(value) for _, value, _ in updates.records]
    assert sorted(e.version for e in events) == list(range(1, versions + 1))
    assert assert_next_stages_consistent(events) == versions
    return events


async def test_a_stall_cannot_be_used_to_skip_to_negotiation(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    fake_llm.reply_builder = scripted_model
    deal = Conversation(kafka_bootstrap_servers, topics, database_url)
    async with TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates) as up:
        start_worker()
        paused = await deal.say("PAUSE: let us pause this until the new year.")
        leapt = await deal.say("LEAP: actually, send the contract today.")
        events = await published(up, 2)

    assert (paused["deal_stage"], paused["stalled_from"]) == ("stalled", "prospecting")
    assert (leapt["deal_stage"], leapt["stalled_from"], leapt["version"]) == (
        "stalled",
        "prospecting",
        2,
    )
    assert await deal.transitions() == [
        (1, "prospecting", "stalled", True, "the prospect asked to pause", "turns"),
        (
            2,
            "stalled",
            "negotiation",
            False,
            "stalled -> negotiation: skips discovery, qualification, evaluation"
            " (stalled from prospecting)",
            "turns",
        ),
    ]
    last = max(events, key=lambda e: e.version)
    assert last.stage_change is not None and not last.stage_change.accepted
    assert last.deal_stage.value == "stalled"


async def test_a_deal_lost_to_a_competitor_in_discovery_ends_closed_lost(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    fake_llm.reply_builder = scripted_model
    deal = Conversation(kafka_bootstrap_servers, topics, database_url)
    async with TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates) as up:
        start_worker()
        exploring = await deal.say("HELLO, we are looking at tools for onboarding.")
        lost = await deal.say("COMPETITOR: thanks, but we went with a competitor.")
        events = await published(up, 2)

    assert exploring["deal_stage"] == "discovery"
    assert (lost["deal_stage"], lost["version"]) == ("closed_lost", 2)
    assert await deal.transitions() == [
        (1, "prospecting", "discovery", True, "the prospect is exploring", "turns"),
        (2, "discovery", "closed_lost", True, "we went with a competitor", "turns"),
    ]
    last = max(events, key=lambda e: e.version)
    assert last.next_stage is None, "a closed deal has no next stage"


async def test_evaluation_needs_a_budget_and_is_accepted_once_there_is_one(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    fake_llm.reply_builder = scripted_model
    deal = Conversation(kafka_bootstrap_servers, topics, database_url)
    async with TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates) as up:
        start_worker()
        await deal.say("HELLO, we are looking at tools for onboarding.")
        qualified = await deal.say("PAINS: onboarding takes us three weeks per hire.")
        without_budget = await deal.say("AUTHORITY: I run operations and we decide this quarter.")
        with_budget = await deal.say("BUDGET: we have set aside $80k for this.")
        events = await published(up, 4)

    assert qualified["deal_stage"] == "qualification"
    assert without_budget["deal_stage"] == "qualification"
    assert with_budget["deal_stage"] == "evaluation"
    assert (await deal.transitions())[2:] == [
        (3, "qualification", "evaluation", False, "qualification -> evaluation: missing budget",
         "turns"),
        (4, "qualification", "evaluation", True, "the budget is set", "turns"),
    ]  # fmt: skip
    gaps = {e.version: e.next_stage for e in events}
    assert gaps[3] is not None and [d.value for d in gaps[3].missing] == ["budget"]
    assert gaps[4] is not None and gaps[4].stage.value == "negotiation"


async def test_the_worker_stalls_a_quiet_deal_and_its_next_turn_resumes_it(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    """The lifespan task with the real clock: the first turn happened 40 days ago."""
    fake_llm.reply_builder = scripted_model
    deal = Conversation(kafka_bootstrap_servers, topics, database_url)
    long_ago = datetime.now(UTC) - timedelta(days=40)
    async with TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates) as up:
        start_worker(STALL_SWEEP_INTERVAL_S="0.2", STALL_AFTER_DAYS="30")
        await deal.say("HELLO, we are looking at tools.", occurred_at=long_ago.isoformat())
        stalled = await deal.wait_for(lambda state: state["deal_stage"] == "stalled")
        now = datetime.now(UTC).isoformat()
        resumed = await deal.say("We are back from the break, HELLO again.", occurred_at=now)
        events = await published(up, 3)

    assert (stalled["stalled_from"], stalled["version"]) == ("discovery", 2)
    assert (resumed["deal_stage"], resumed["stalled_from"], resumed["version"]) == (
        "discovery",
        None,
        3,
    )
    assert await deal.transitions() == [
        (1, "prospecting", "discovery", True, "the prospect is exploring", "turns"),
        (2, "discovery", "stalled", True, "no activity for 30 days", "inactivity"),
        (3, "stalled", "discovery", True, "activity resumed", "turns"),
    ]
    by_version = {e.version: e for e in events}
    assert by_version[2].source == "inactivity" and by_version[2].extraction is None
    assert by_version[3].previous_stage.value == "stalled"


CALL = (
    "Our month-end close takes nine days and the auditors complained.",
    "We have $60k approved for this, I'm the CFO and it's my call, and we want it live by March.",
    "The budget is mine to approve. It must integrate with NetSuite.",
    "Procurement runs a security review, then I sign.",
)


def whole_call_model(request: dict[str, Any]) -> dict[str, Any]:
    """A model that reads a whole sales call at once: every dimension negotiation needs, each
    quoted from the turn that says it, and the walk from prospecting to negotiation, each step
    quoted too (the stage machine judges every step against the merged state)."""
    prompt = "\n".join(str(m.get("content") or "") for m in request.get("messages", []))
    texts = [m.group("text") for m in _TURN_TEXT.finditer(prompt)]
    if texts != list(CALL):
        return EMPTY_EXTRACTION
    pain, terms, buyer, process = CALL
    bant = dimension("need", pain) | dimension("budget", terms) | dimension("authority", terms)
    bant |= dimension("timeline", terms)
    meddic = dimension("identify_pain", pain) | dimension("economic_buyer", buyer)
    meddic |= dimension("decision_process", process)
    meddic |= {"decision_criteria": ["NetSuite"], "decision_criteria_evidence": [buyer]}
    walk = [
        {"stage": "discovery", "reason": "a pain is named", "quote": pain},
        {"stage": "qualification", "reason": "need and pain", "quote": pain},
        {"stage": "evaluation", "reason": "budget, buyer and date", "quote": terms},
        {"stage": "negotiation", "reason": "the path to a signature", "quote": process},
    ]
    return {**EMPTY_EXTRACTION, "bant": bant, "meddic": meddic, "stage_walk": walk}


async def test_a_whole_call_in_one_batch_walks_to_negotiation_in_four_quoted_steps(
    start_worker: StartWorker,
    kafka_bootstrap_servers: str,
    topics: Topics,
    database_url: str,
    fake_llm: FakeLLMServer,
) -> None:
    """The call arrives at once (a transcript, a backlog): produced before the worker starts,
    it is one batch, one extraction and one version that records the walk step by step."""
    fake_llm.reply_builder = whole_call_model
    deal = Conversation(kafka_bootstrap_servers, topics, database_url)
    payloads = [turn(deal.tenant, "acme", "jane", n, text) for n, text in enumerate(CALL)]
    await produce(kafka_bootstrap_servers, topics.turns, payloads)
    async with TopicReader(bootstrap_servers=kafka_bootstrap_servers, topic=topics.updates) as up:
        start_worker()
        state = await deal.wait_for(lambda s: s["interaction_count"] == len(CALL))
        (event,) = await published(up, 1)

    assert (state["deal_stage"], state["version"]) == ("negotiation", 1)
    assert fake_llm.received == 1
    assert event.stage_change is not None and event.stage_change.accepted
    assert (event.previous_stage.value, event.deal_stage.value) == ("prospecting", "negotiation")
    assert [(s.from_stage.value, s.to_stage.value) for s in event.stage_change.steps] == [
        ("prospecting", "discovery"),
        ("discovery", "qualification"),
        ("qualification", "evaluation"),
        ("evaluation", "negotiation"),
    ]
    assert await deal.transitions() == [
        (1, "prospecting", "discovery", True, "a pain is named", "turns"),
        (1, "discovery", "qualification", True, "need and pain", "turns"),
        (1, "qualification", "evaluation", True, "budget, buyer and date", "turns"),
        (1, "evaluation", "negotiation", True, "the path to a signature", "turns"),
    ]
