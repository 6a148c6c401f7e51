"""What `python -m worker override` builds from its arguments, and how the operator views show
ownership (the publishing itself runs against the broker in tests/e2e/test_override_cli.py)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from schemas import (
    Actor,
    BANTSignals,
    ConversationState,
    Dimension,
    MEDDICSignals,
    Owner,
    QualificationState,
    Suggestion,
)
from worker.errors import ConfigurationError
from worker.tools.override import OverrideArguments, build_override
from worker.tools.views import PIPELINE_LEGEND, render_pipeline, render_state

TENANT = uuid.uuid4()
EVENT_ID = uuid.uuid4()
NOW = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)
REP = Actor(type="user", id="rep-7")


def arguments(**fields: object) -> OverrideArguments:
    base: dict[str, object] = {
        "tenant": str(TENANT),
        "account": "acme:emea",
        "contact": "ann",
        "actor": "user:rep-7",
    }
    return OverrideArguments(**(base | fields))  # type: ignore[arg-type]


def test_set_items_become_typed_fields_of_their_dimension() -> None:
    override = build_override(
        arguments(
            sets=[
                "budget.budget_range=$90k",
                "budget.confidence=0.9",
                "authority.identified=false",
                "decision_criteria.decision_criteria=SSO",
                "decision_criteria.decision_criteria=SOC 2",
                "need.need_description=",
                "champion",
            ]
        ),
        event_id=EVENT_ID,
        now=NOW,
    )
    assert json.loads(override.to_json())["set"] == {
        "budget": {"budget_range": "$90k", "confidence": 0.9},
        "authority": {"identified": False},
        "decision_criteria": {"decision_criteria": ["SSO", "SOC 2"]},
        "need": {"need_description": None},
        "champion": {},
    }
    assert (override.event_id, override.occurred_at, override.actor) == (EVENT_ID, NOW, REP)
    assert str(override.key) == f"{TENANT}:acme%3Aemea:ann"


def test_lock_unlock_and_stage_arguments() -> None:
    override = build_override(
        arguments(
            actor="crm:salesforce",
            locks=["need"],
            unlocks=["budget"],
            stage="evaluation",
            reason="call with the CFO",
        ),
        event_id=EVENT_ID,
        now=NOW,
    )
    assert override.lock == [Dimension.NEED] and override.unlock == [Dimension.BUDGET]
    assert override.stage is not None and override.stage.reason == "call with the CFO"
    assert override.actor == Actor(type="crm", id="salesforce")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"locks": ["budget"], "tenant": "acme"}, "TENANT must be a UUID"),
        ({"locks": ["budget"], "actor": "bot:x"}, "--actor must be TYPE:ID"),
        ({"locks": ["budget"], "actor": None}, "--actor must be TYPE:ID"),
        ({"locks": ["budget"], "actor": "user:"}, "--actor must be TYPE:ID"),
        ({"unlocks": ["budgett"]}, "--unlock: unknown dimension 'budgett'"),
        ({"sets": ["budget.budget_rnage=1"]}, "FIELD one of budget_range, confidence"),
        ({"sets": ["budget.confidence=high"]}, "confidence must be a number"),
        ({"sets": ["budget.confidence=1.5"]}, "set.budget.confidence: Input should be less"),
        ({"sets": ["need.identified=maybe"]}, "identified must be true or false"),
        ({"sets": ["need.need_description=a", "need.need_description=b"]}, "given twice"),
        ({"stage": "won", "reason": "x"}, "--stage: unknown stage 'won'"),
        ({"stage": "evaluation"}, "--stage needs --reason"),
        ({"reason": "because"}, "--reason explains a --stage"),
        ({}, "nothing to do"),
        ({"locks": ["need"], "unlocks": ["need"]}, "need in both lock and unlock"),
    ],
)
def test_bad_arguments_name_what_is_wrong(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build_override(arguments(**fields), event_id=EVENT_ID, now=NOW)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def owned_state() -> ConversationState:
    return ConversationState(
        tenant_id=TENANT,
        account_id="acme",
        contact_id="ann",
        contact_email="ann@acme.example",
        qualification=QualificationState(
            bant=BANTSignals(budget_identified=True, budget_range="$90k"),
            meddic=MEDDICSignals(decision_criteria=["SSO"]),
        ),
        owners={
            "budget": Owner(actor=REP, since=NOW),
            "champion": Owner(actor=REP, since=NOW),
        },
        suggestions={
            "budget": Suggestion(
                values={"budget_range": "$120k"}, identified=True, confidence=0.9, version=4
            )
        },
    )


def test_pipeline_marks_owned_dimensions_and_explains_the_mark() -> None:
    table = render_pipeline(TENANT, [owned_state()]).splitlines()
    assert "B*···" in table[3] and "··D···*" in table[3]
    assert table[-1] == PIPELINE_LEGEND


def test_pipeline_without_owned_dimensions_has_no_legend() -> None:
    plain = owned_state().model_copy(update={"owners": {}})
    table = render_pipeline(TENANT, [plain])
    assert "*" not in table and PIPELINE_LEGEND not in table


def test_state_json_shows_owners_and_suggestions() -> None:
    shown = json.loads(render_state(owned_state()))
    assert shown["owners"]["budget"]["actor"] == {"type": "user", "id": "rep-7"}
    assert shown["suggestions"]["budget"]["values"] == {"budget_range": "$120k"}
