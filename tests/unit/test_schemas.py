"""The contract's models: validation rules, and the exported JSON Schema kept in step."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import (
    BANTSignals,
    ConversationTurn,
    QualificationExtraction,
    QualificationUpdated,
)
from schemas.export import EVENT_MODELS, JSON_DIR, render


def turn_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "tenant_id": str(uuid.uuid4()),
        "account_id": "acme",
        "contact_id": "c-1",
        "contact_email": "jane@example.com",
        "channel": "email",
        "speaker": "prospect",
        "text": "We have about $50k set aside.",
        "occurred_at": "2026-10-05T14:03:00+02:00",
    }
    payload.update(overrides)
    return payload


def error_types(error: ValidationError) -> set[str]:
    return {e["type"] for e in error.errors()}


@pytest.mark.parametrize("name", sorted(EVENT_MODELS))
def test_exported_json_schema_matches_the_model(name: str) -> None:
    exported = (JSON_DIR / f"{name}.json").read_text()
    assert exported == render(EVENT_MODELS[name]), (
        f"schemas/json/{name}.json is stale: run `make schemas` and commit the result"
    )


def test_valid_turn_is_accepted_and_unknown_fields_are_ignored() -> None:
    turn = ConversationTurn.model_validate(turn_payload(unexpected="ignored"))
    assert turn.key.account_id == "acme"
    assert str(turn.key) == f"{turn.tenant_id}:acme:c-1"


@pytest.mark.parametrize(
    ("overrides", "expected_type"),
    [
        ({"occurred_at": "2026-10-05T14:03:00"}, "timezone_aware"),
        ({"event_id": "not-a-uuid"}, "uuid_parsing"),
        ({"account_id": ""}, "string_too_short"),
        ({"contact_id": "x" * 101}, "string_too_long"),
        ({"contact_email": "not-an-email"}, "value_error"),
        ({"channel": "pigeon"}, "enum"),
        ({"speaker": None}, "enum"),
        ({"text": ""}, "string_too_short"),
        ({"sequence": -1}, "greater_than_equal"),
        ({"text": "nul\x00byte"}, "value_error"),
        ({"metadata": {"blob": "x" * 17_000}}, "too_large"),
        ({"text": "x" * 20_001}, "too_large"),
    ],
)
def test_turn_that_breaks_a_rule_is_rejected(overrides: dict[str, Any], expected_type: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ConversationTurn.model_validate(turn_payload(**overrides))
    assert expected_type in error_types(caught.value)


def test_missing_required_field_is_rejected() -> None:
    payload = turn_payload()
    del payload["contact_email"]
    with pytest.raises(ValidationError) as caught:
        ConversationTurn.model_validate(payload)
    assert "missing" in error_types(caught.value)


def test_text_limit_follows_the_max_turn_chars_setting() -> None:
    payload = turn_payload(text="x" * 50)
    with pytest.raises(ValidationError):
        ConversationTurn.model_validate(payload, context={"max_turn_chars": 49})
    assert ConversationTurn.model_validate(payload, context={"max_turn_chars": 50}).text


@pytest.mark.parametrize("confidence", [-0.01, 1.01])
def test_confidence_outside_zero_to_one_is_rejected(confidence: float) -> None:
    with pytest.raises(ValidationError):
        BANTSignals(budget_confidence=confidence)


def test_unknown_stage_in_an_extraction_is_rejected() -> None:
    with pytest.raises(ValidationError):
        QualificationExtraction.model_validate({"suggested_stage": "won_already"})


def test_stage_change_serialises_with_from_and_to() -> None:
    schema = json.loads((JSON_DIR / "qualification_updated.json").read_text())
    stage_change = schema["$defs"]["StageChange"]["properties"]
    assert {"from", "to", "accepted", "reason"} <= set(stage_change)
    assert "version" in QualificationUpdated.model_fields
