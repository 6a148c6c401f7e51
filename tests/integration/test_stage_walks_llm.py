"""Stage walks and the evidence rules through the real LLM path (instructor + LiteLLM + HTTP to
the scripted fake model), the worker's own service and PostgreSQL: one batch, one extraction,
one version, a row of tenant.stage_transitions per judged step."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from prometheus_client import REGISTRY

from schemas import ConversationKey, ConversationTurn, DealStage
from tests.fakes.llm_server import EMPTY_EXTRACTION, FakeLLMServer, ToolCallReply
from tests.harness import turn
from worker.bootstrap import build_service
from worker.qualify.repository import ConversationStateRepository
from worker.settings import Settings

PAIN = "Our month-end close takes nine days and the auditors complained."
NEED = "We need invoice matching that runs on its own."
MONEY = "We have $60k approved for this."
DECIDER = "I'm the CFO and I sign off on it."
WHEN = "We want it live by March."
BUYER = "The budget is mine, I'm the one who approves it."
CRITERIA = "It must integrate with NetSuite."
PROCESS = "Procurement runs a security review, then I sign."
REP_LOST = "Sounds like you went with another vendor."
CALL = [
    ("rep", "What made you take the call?"),
    ("prospect", f"{PAIN} {NEED}"),
    ("rep", "Budget, who decides, and timing?"),
    ("prospect", f"{MONEY} {DECIDER} {WHEN}"),
    ("rep", "How will you decide?"),
    ("prospect", f"{BUYER} {CRITERIA} {PROCESS}"),
]


def settings_for(fake_llm: FakeLLMServer) -> Settings:
    return Settings(
        llm_model="openai/fake-model",
        llm_api_base=fake_llm.base_url,
        llm_api_key="sk-test",
        llm_mode="tools",  # the scripted replies are tool calls (auto picks JSON mode here)
        llm_transport_attempts=1,
        update_topic="updates",
    )


def call_turns(lines: list[tuple[str, str]]) -> list[ConversationTurn]:
    tenant = uuid.uuid4()
    return [
        ConversationTurn.model_validate(turn(tenant, "acme", "cfo", n, text, speaker=speaker))
        for n, (speaker, text) in enumerate(lines)
    ]


def identified(name: str, quote: str, **values: Any) -> dict[str, Any]:
    flag = {} if name == "decision_criteria" else {f"{name}_identified": True}
    return {**flag, f"{name}_confidence": 0.9, f"{name}_evidence": [quote], **values}


def whole_call(walk: list[dict[str, str]]) -> dict[str, Any]:
    """What a model reads in CALL: every dimension negotiation needs, quoted, and `walk`."""
    bant = {
        **identified("budget", MONEY, budget_range="$60k"),
        **identified("authority", DECIDER, authority_role="CFO"),
        **identified("need", NEED, need_description="invoice matching"),
        **identified("timeline", WHEN, timeline_description="March"),
    }
    meddic = {
        **identified("identify_pain", PAIN, pain_description="a nine-day close"),
        **identified("economic_buyer", BUYER, economic_buyer_contact="the CFO"),
        **identified("decision_criteria", CRITERIA, decision_criteria=["NetSuite"]),
        **identified("decision_process", PROCESS, decision_process_description="review, sign"),
    }
    return {**EMPTY_EXTRACTION, "bant": bant, "meddic": meddic, "stage_walk": walk}


def step(stage: str, quote: str) -> dict[str, str]:
    return {"stage": stage, "reason": f"the call shows {stage}", "quote": quote}


async def transitions(pool: asyncpg.Pool, key: ConversationKey) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(
        "SELECT version, step, from_stage, to_stage, accepted, reason"
        " FROM tenant.stage_transitions"
        " WHERE tenant_id = $1 AND account_id = $2 AND contact_id = $3 ORDER BY id",
        *key,
    )
    return [tuple(row) for row in rows]


def proposals(from_stage: str, to_stage: str) -> float:
    labels = {"from_stage": from_stage, "to_stage": to_stage, "outcome": "accepted"}
    return REGISTRY.get_sample_value("qualification_stage_proposals_total", labels) or 0.0


async def test_a_call_in_one_batch_walks_to_negotiation_in_four_quoted_steps(
    repository: ConversationStateRepository, fake_llm: FakeLLMServer, owner_pool: asyncpg.Pool
) -> None:
    turns = call_turns(CALL)
    walk = [
        step("discovery", NEED),
        step("qualification", PAIN),
        step("evaluation", WHEN),
        step("negotiation", PROCESS),
    ]
    fake_llm.script(ToolCallReply(arguments=whole_call(walk)))
    service = build_service(settings_for(fake_llm), repository.database)
    moves = [("prospecting", "discovery"), ("evaluation", "negotiation")]
    counted = [proposals(*move) for move in moves]

    await service.process_batch(turns)

    assert fake_llm.received == 1  # one extraction for the whole call
    # The metric counts each step, never a "prospecting -> negotiation" that reads as a skip.
    assert [proposals(*move) for move in moves] == [n + 1 for n in counted]
    assert proposals("prospecting", "negotiation") == 0
    state = await repository.get_state(*turns[0].key)
    assert state is not None
    assert (state.deal_stage, state.version) == (DealStage.NEGOTIATION, 1)
    assert await transitions(owner_pool, turns[0].key) == [
        (1, 1, "prospecting", "discovery", True, "the call shows discovery"),
        (1, 2, "discovery", "qualification", True, "the call shows qualification"),
        (1, 3, "qualification", "evaluation", True, "the call shows evaluation"),
        (1, 4, "evaluation", "negotiation", True, "the call shows negotiation"),
    ]


async def test_a_walk_stops_at_an_invented_quote_with_the_reason_recorded(
    repository: ConversationStateRepository, fake_llm: FakeLLMServer, owner_pool: asyncpg.Pool
) -> None:
    turns = call_turns(CALL)
    walk = [
        step("discovery", NEED),
        step("qualification", "We are desperate to buy this quarter."),  # nobody said it
        step("evaluation", WHEN),
    ]
    fake_llm.script(ToolCallReply(arguments=whole_call(walk)))
    service = build_service(settings_for(fake_llm), repository.database)

    await service.process_batch(turns)

    state = await repository.get_state(*turns[0].key)
    assert state is not None and state.deal_stage is DealStage.DISCOVERY
    assert await transitions(owner_pool, turns[0].key) == [
        (1, 1, "prospecting", "discovery", True, "the call shows discovery"),
        (
            1,
            2,
            "discovery",
            "qualification",
            False,
            "discovery -> qualification: no quote from the turns supports this step",
        ),
    ]


async def test_invented_claims_and_a_rep_only_loss_change_nothing(
    repository: ConversationStateRepository, fake_llm: FakeLLMServer, owner_pool: asyncpg.Pool
) -> None:
    """A model that obeys "mark everything identified" with quotes nobody said, and closes the
    deal as lost on the rep's words: no dimension, no stage, and the reason on record."""
    turns = call_turns([("prospect", "Hi, just browsing."), ("rep", REP_LOST)])
    invented = whole_call([step("closed_lost", REP_LOST)])
    fake_llm.script(ToolCallReply(arguments=invented))
    service = build_service(settings_for(fake_llm), repository.database)

    await service.process_batch(turns)

    state = await repository.get_state(*turns[0].key)
    assert state is not None
    assert state.deal_stage is DealStage.PROSPECTING
    assert not state.qualification.bant.budget_identified
    assert not state.qualification.meddic.decision_criteria
    assert await transitions(owner_pool, turns[0].key) == [
        (
            1,
            1,
            "prospecting",
            "closed_lost",
            False,
            "prospecting -> closed_lost: closing as lost needs a quote from a prospect turn; "
            "the quote is the rep's",
        )
    ]
