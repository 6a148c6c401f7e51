"""REDACT_CONTACT_DATA end to end through the real instructor + LiteLLM client: what the (fake)
LLM provider receives, turns and known state alike, and evidence quotes around a placeholder."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from schemas import ConversationTurn, DealStage, QualificationOverride, QualificationState
from tests.fakes.llm_server import EMPTY_EXTRACTION, FakeLLMServer, ToolCallReply
from tests.harness import BASE_TIME, turn
from tests.state_store import count_turns
from worker.bootstrap import build_service
from worker.extract.factory import build_extractor
from worker.qualify.extraction import as_turn_text
from worker.qualify.repository import ConversationStateRepository
from worker.settings import Settings

CONTACT_DATA = ["jane.doe@acme.com", "(415) 555-0132", "+44 20 7946 0958", "4111 1111 1111 1111"]
TEXTS = [
    "We need a shared inbox. Call me at (415) 555-0132 so we can plan the pilot.",
    "Or write to jane.doe@acme.com; my London desk is +44 20 7946 0958.",
    "Budget is $80,000 by Q3 2027; the deposit card is 4111 1111 1111 1111.",
]
QUOTE = "Call me at [phone] so we can plan the pilot."
NEED_WITH_QUOTE: dict[str, Any] = {
    **EMPTY_EXTRACTION,
    "bant": {
        "need_identified": True,
        "need_confidence": 0.7,
        "need_description": "a shared inbox",
        "need_evidence": ["We need a shared inbox.", QUOTE],
    },
}


def settings_for(fake_llm: FakeLLMServer, **overrides: Any) -> Settings:
    return Settings(
        llm_model="openai/fake-model",
        llm_api_base=fake_llm.base_url,
        llm_mode="tools",  # the scripted replies are tool calls
        llm_api_key="sk-test",
        llm_transport_attempts=1,
        **overrides,
    )


def batch() -> list[ConversationTurn]:
    tenant = uuid.uuid4()
    return [
        ConversationTurn.model_validate(turn(tenant, "acme", "jane", i, text))
        for i, text in enumerate(TEXTS)
    ]


def sent_to_provider(fake_llm: FakeLLMServer) -> str:
    return "\n".join(json.dumps(body) for body in fake_llm.requests)


async def test_with_redaction_the_provider_receives_no_email_phone_or_card_number(
    repository: ConversationStateRepository, fake_llm: FakeLLMServer
) -> None:
    fake_llm.script(ToolCallReply(arguments=NEED_WITH_QUOTE))
    service = build_service(settings_for(fake_llm), repository.database)
    turns = batch()

    outcome = await service.process_batch(turns)

    assert outcome.applied == 3 and fake_llm.received == 1
    sent = sent_to_provider(fake_llm)
    for value in CONTACT_DATA:
        assert value not in sent and json.dumps(value)[1:-1] not in sent
    assert "[email]" in sent and "[phone]" in sent and "[card]" in sent
    assert "$80,000" in sent and "Q3 2027" in sent, "amounts and dates are not contact data"
    state = await repository.get_state(*turns[0].key)
    assert state is not None
    assert state.qualification.bant.need_evidence == ["We need a shared inbox.", QUOTE]
    stored = await count_turns(repository.database, turns[0].key)
    assert stored == (3, 0)


async def test_without_redaction_the_provider_receives_the_turns_as_written(
    fake_llm: FakeLLMServer,
) -> None:
    fake_llm.script(ToolCallReply(arguments=NEED_WITH_QUOTE))
    extractor = build_extractor(settings_for(fake_llm, redact_contact_data=False))

    result = await extractor.extract_signals(
        [as_turn_text(t) for t in batch()], QualificationState(), DealStage.PROSPECTING
    )

    sent = sent_to_provider(fake_llm)
    assert all(json.dumps(value)[1:-1] in sent for value in CONTACT_DATA)
    assert result.evidence_dropped == 1, "the placeholder quote matches no turn it saw"


OVERRIDE_CONTACTS = ["jane.doe@acme.com", "jörg.weiß@bücher.de", "+44 20 7946 0958"]


def override_setting_contacts(tenant: uuid.UUID) -> QualificationOverride:
    """A rep's correction whose values hold contact data, as people type them into a CRM."""
    return QualificationOverride.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "tenant_id": str(tenant),
            "account_id": "acme",
            "contact_id": "jane",
            "actor": {"type": "user", "id": "rep-1"},
            "set": {
                "authority": {"authority_contact": "Jane Doe <jane.doe@acme.com>"},
                "champion": {"champion_contact": "Jörg (jörg.weiß@bücher.de, +44 20 7946 0958)"},
            },
            "occurred_at": (BASE_TIME + timedelta(hours=1)).isoformat(),
        }
    )


async def test_an_overrides_contact_data_in_the_known_state_never_reaches_the_provider(
    repository: ConversationStateRepository, fake_llm: FakeLLMServer
) -> None:
    service = build_service(settings_for(fake_llm), repository.database)
    tenant = uuid.uuid4()
    first = ConversationTurn.model_validate(turn(tenant, "acme", "jane", 0, "We need a CRM."))
    later = ConversationTurn.model_validate(
        turn(tenant, "acme", "jane", 1, "Jane signs.", occurred_at=BASE_TIME + timedelta(hours=2))
    )
    await service.process_batch([first])
    outcome = await service.process_batch([override_setting_contacts(tenant)])
    assert outcome.overrides_applied == 1
    fake_llm.reset()

    await service.process_batch([later])

    assert fake_llm.received == 1
    sent = sent_to_provider(fake_llm)
    for value in OVERRIDE_CONTACTS:
        assert value not in sent and json.dumps(value)[1:-1] not in sent
    assert json.dumps('authority_contact="Jane Doe <[email]>"')[1:-1] in sent
    state = await repository.get_state(*first.key)
    assert state is not None, "the stored state keeps what the person set"
    assert state.qualification.bant.authority_contact == "Jane Doe <jane.doe@acme.com>"
