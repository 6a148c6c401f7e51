"""`QualificationOverride` (CONTRACT.md section 1, v2): what it accepts, and where it points when
it refuses (the consumer dead-letters the refusal as `invalid_event` with this detail)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import Dimension, QualificationOverride
from worker.ingest.decoding import describe


def override_payload(**fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "tenant_id": str(uuid.uuid4()),
        "account_id": "acme",
        "contact_id": "c-1",
        "actor": {"type": "user", "id": "rep-7"},
        "occurred_at": "2026-10-05T14:03:00+02:00",
    }
    payload.update(fields)
    return payload


LOCK: dict[str, Any] = {
    "lock": ["budget"]
}  # something to do, where the case is about another field


def refusal(payload: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        QualificationOverride.model_validate(payload)
    return describe(caught.value)


def test_set_takes_the_dimensions_given_and_ignores_unknown_top_level_fields() -> None:
    override = QualificationOverride.model_validate(
        override_payload(
            set={
                "budget": {"budget_range": "$90k"},
                "decision_criteria": {"decision_criteria": ["SSO", "SOC 2"], "confidence": 0.8},
            },
            crm_record_id="ignored",
        )
    )
    dimensions = override.set_dimensions()
    assert list(dimensions) == [Dimension.BUDGET, Dimension.DECISION_CRITERIA]
    budget = dimensions[Dimension.BUDGET]
    assert budget.given_values() == {"budget_range": "$90k"}
    assert (budget.identified_flag(), budget.confidence) == (True, 1.0)
    criteria = dimensions[Dimension.DECISION_CRITERIA]
    assert criteria.identified_flag() is None and criteria.confidence == 0.8
    assert str(override.key) == f"{override.tenant_id}:acme:c-1"


def test_an_explicit_null_is_given_and_a_missing_field_is_not() -> None:
    override = QualificationOverride.model_validate(
        override_payload(set={"authority": {"authority_role": None}})
    )
    assert override.set_dimensions()[Dimension.AUTHORITY].given_values() == {"authority_role": None}


def test_lock_unlock_or_stage_alone_is_enough() -> None:
    for fields in (
        {"lock": ["budget"]},
        {"unlock": ["champion"]},
        {"stage": {"to": "evaluation", "reason": "call with the CFO"}},
    ):
        QualificationOverride.model_validate(override_payload(**fields))


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        (
            {"set": {"budget": {"budget_rnage": "$90k"}}},
            "set.budget.budget_rnage: unknown field for budget; its fields: budget_range, "
            "confidence, identified",
        ),
        ({"set": {"budgett": {}}}, "set.budgett: unknown dimension; one of: budget, authority"),
        (
            {"set": {"decision_criteria": {"identified": True}}},
            "set.decision_criteria.identified: unknown field for decision_criteria",
        ),
        (
            {"set": {"budget": {"budget_range": 90000}}},
            "set.budget.budget_range: Input should be a valid string",
        ),
        (
            {"set": {"decision_criteria": {"decision_criteria": "SSO"}}},
            "set.decision_criteria.decision_criteria: Input should be a valid list",
        ),
        (
            {"set": {"budget": {"confidence": 1.5}}},
            "set.budget.confidence: Input should be less than or equal to 1",
        ),
        ({"set": {"need": {"identified": "maybe"}}}, "set.need.identified: Input should be"),
        ({"set": {"budget": None}}, "set.budget: null is not a value"),
        ({"set": {"need": {"need_description": "a\x00b"}}}, "set.need.need_description: Value"),
        ({"lock": ["budgett"]}, "lock.0: Input should be 'budget'"),
        ({}, "nothing to do: give at least one of set, lock, unlock or stage"),
        ({"set": {}, "lock": []}, "nothing to do"),
        ({"lock": ["need"], "unlock": ["need"]}, "need in both lock and unlock"),
        ({"set": {"need": {}}, "unlock": ["need"]}, "need in both set and unlock"),
        ({"stage": {"to": "won", "reason": "signed"}}, "stage.to: Input should be 'prospecting'"),
        ({"stage": {"to": "evaluation"}}, "stage.reason: Field required"),
        ({"stage": {"to": "evaluation", "reason": "x" * 501}}, "stage.reason: String should"),
        (
            {**LOCK, "actor": {"type": "bot", "id": "x"}},
            "actor.type: Input should be 'user', 'crm'",
        ),
        ({**LOCK, "actor": {"type": "user", "id": ""}}, "actor.id: String should have at least 1"),
        ({**LOCK, "actor": {"type": "user", "id": "u\x00"}}, "actor.id: Value error"),
        ({**LOCK, "occurred_at": "2026-10-05T14:03:00"}, "occurred_at: Input should have timezone"),
        (
            {**LOCK, "occurred_at": "9999-12-31T23:59:00-05:00"},
            "occurred_at: Value error, is out of",
        ),
        ({**LOCK, "event_id": "not-a-uuid"}, "event_id: Input should be a valid UUID"),
        ({**LOCK, "account_id": "x" * 101}, "account_id: String should have at most 100"),
        # v3 bounds: a list value field holds what the state keeps (schemas/bounds.py).
        (
            {"set": {"decision_criteria": {"decision_criteria": [f"c{n}" for n in range(31)]}}},
            "set.decision_criteria.decision_criteria: List should have at most 30 items",
        ),
        (
            {"set": {"decision_criteria": {"decision_criteria": ["SSO", "x" * 201]}}},
            "set.decision_criteria.decision_criteria.1: String should have at most 200",
        ),
        (
            {"lock": ["budget"] * (len(Dimension) + 1)},
            f"lock: List should have at most {len(Dimension)} items",
        ),
    ],
)
def test_an_override_that_breaks_a_rule_is_refused_with_its_path(
    fields: dict[str, Any], detail: str
) -> None:
    assert detail in refusal(override_payload(**fields))


def test_fingerprint_is_equal_for_a_redelivery_and_differs_for_other_content() -> None:
    payload = override_payload(set={"budget": {"budget_range": "$90k"}})
    first = QualificationOverride.model_validate(payload)
    redelivered = QualificationOverride.model_validate_json(json.dumps(payload))
    cleared = QualificationOverride.model_validate(
        {**payload, "set": {"budget": {"budget_range": "$90k"}, "need": {}}}
    )
    assert first.fingerprint() == redelivered.fingerprint()
    assert first.fingerprint() != cleared.fingerprint()


def test_to_json_keeps_a_missing_field_missing() -> None:
    override = QualificationOverride.model_validate(
        override_payload(set={"authority": {"authority_role": "CFO"}})
    )
    sent = json.loads(override.to_json())
    assert sent["set"] == {"authority": {"authority_role": "CFO"}}
    assert "lock" not in sent and "stage" not in sent
    assert QualificationOverride.model_validate(sent) == override
